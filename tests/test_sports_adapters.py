"""Sports score adapters: the Polymarket sports WebSocket decoder (real captures and the docs'
examples), the kernel's handling of bad frames, the SportsFeed against a local WebSocket server
(ping/pong, verbatim forwarding, reconnects, liveness, staleness, the league filter) and the
ScoreboardFeed against a local HTTP server (a generic mapping, the ESPN preset, unchanged bodies,
HTTP errors). Loopback only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import WSMsgType, web

from adapters.sports.polymarket import SportsFeed, frame_leagues
from adapters.sports.scoreboard import DECODER as SCOREBOARD_DECODER
from adapters.sports.scoreboard import (
    ESPN_PRESET,
    ScoreboardFeed,
    compile_path,
    redact_url,
    resolve,
)
from adapters.sports.wire import DECODER, bare_ts, parse_elapsed, parse_score, sport_of
from polybot.clock import LiveClock, iso_to_ns
from polybot.events import FeedConnected, FeedDisconnected, FeedStale, GameState, InputDropped
from polybot.kernel import FrameError, InboundRecord, Kernel

from sample_data import SAMPLES, require_samples

require_samples()

SPORTS = SAMPLES / "dilettante-trading"


def sample(name: str) -> bytes:
    return (SPORTS / f"polyoxide__sports__{name}.json").read_bytes()


# ====================================================================================== decoder

#: Every real capture and what it must decode to (fields not listed: the GameState default).
REAL: dict[str, dict[str, Any]] = {
    "soccer": dict(
        game_id="90106111", league="kor", sport="soccer", home="Gimcheon Sangmu FC", away="Daejeon Hana Citizen FC",
        home_score=2, away_score=1, score="2-1", period="2H", clock="74", elapsed_s=74 * 60, elapsed_scope="match",
        status="InProgress", live=True, ended=False, feed_ts=iso_to_ns("2026-07-25T12:02:18.395759286Z"),
    ),
    "tennis_event_state": dict(
        game_id="5968822", league="atp", sport="tennis", home="Alexander Bublik", away="Quentin Halys",
        home_score=0, away_score=1, score="4-6, 1-2", period="S2", clock="", elapsed_s=None, elapsed_scope="",
        status="inprogress", live=True, ended=False, feed_ts=1_784_980_943_120_698_555,
    ),
    "esports": dict(
        game_id="1590176", league="lol", sport="esports", home="Caldya Esport", away="Galions Sharks",
        home_score=0, away_score=0, score="000-000|0-0|Bo1", period="1/1", status="running", live=True,
        ended=False, feed_ts=0,
    ),
    "cricket": dict(
        game_id="id2703680373085574", league="cricket", sport="cricket", home="", away="", home_score=21,
        away_score=178, score="21-178", period="Live", status="", live=True, ended=False, feed_ts=0,
    ),
    "cricket_finished": dict(
        game_id="id2703438269077680", league="cricket", sport="cricket", home_score=116, away_score=38,
        score="116-38", period="FT", live=False, ended=True, feed_ts=iso_to_ns("2026-07-25T12:06:54.595448902Z"),
    ),
    "finished_numeric": dict(
        game_id="6352662", league="wta", sport="tennis", home="Yulia Starodubtseva", away="Alina Charaeva",
        home_score=1, away_score=2, score="7-5, 5-7, 2-6", period="FT", status="finished", live=False, ended=True,
        feed_ts=1_790_835_803_907_040_294,
    ),
    "league_with_space": dict(
        game_id="6361496", league="wta challenger", sport="tennis", home="Hiroko Kuwata", away="Wushuang Zheng",
        home_score=0, away_score=0, score="0-0", period="S2", status="inprogress", live=True, ended=False,
    ),
    "elapsed_without_event_state": dict(
        game_id="90123275", league="fif", sport="soccer", home="Uzbekistan", away="Syria", home_score=0,
        away_score=0, score="0-0", period="1H", clock="12", elapsed_s=720, elapsed_scope="match",
        status="InProgress", live=True, ended=False, feed_ts=0,
    ),
}  # fmt: skip


def test_every_real_capture_is_covered() -> None:
    names = sorted(p.name.removeprefix("polyoxide__sports__").removesuffix(".json") for p in SPORTS.glob("*.json"))
    assert names == sorted(REAL)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_capture_decodes(name: str) -> None:
    (ev,) = DECODER(sample(name), 123)
    assert isinstance(ev, GameState)
    assert ev.ts == 123 and ev.feed == "sports.polymarket" and ev.slug == "" and ev.turn == ""
    for field, want in REAL[name].items():
        assert getattr(ev, field) == want, field


def test_docs_examples() -> None:
    nfl = (b'{"gameId":19439,"leagueAbbreviation":"nfl","slug":"nfl-lac-buf-2025-01-26","homeTeam":"LAC",'
           b'"awayTeam":"BUF","status":"InProgress","score":"3-16","period":"Q4","elapsed":"5:18","live":true,'
           b'"ended":false,"turn":"lac"}')  # fmt: skip
    (ev,) = DECODER(nfl, 1)
    assert (ev.game_id, ev.league, ev.sport, ev.slug) == ("19439", "nfl", "football", "nfl-lac-buf-2025-01-26")
    assert (ev.home, ev.away, ev.home_score, ev.away_score, ev.score) == ("LAC", "BUF", 3, 16, "3-16")
    assert (ev.period, ev.clock, ev.elapsed_s, ev.elapsed_scope) == ("Q4", "5:18", 318, "period")
    assert (ev.status, ev.live, ev.ended, ev.turn, ev.feed_ts) == ("InProgress", True, False, "lac", 0)

    cs2 = (b'{"gameId":1317359,"leagueAbbreviation":"cs2","slug":"cs2-arcred-the-glecs-2025-07-20",'
           b'"homeTeam":"ARCRED","awayTeam":"The glecs","status":"finished","score":"000-000|2-0|Bo3",'
           b'"period":"2/3","live":false,"ended":true,"finished_timestamp":"2025-07-20T18:30:00.000Z"}')  # fmt: skip
    (ev,) = DECODER(cs2, 1)
    assert (ev.game_id, ev.sport, ev.home, ev.away) == ("1317359", "esports", "ARCRED", "The glecs")
    assert (ev.home_score, ev.away_score, ev.score, ev.period) == (2, 0, "000-000|2-0|Bo3", "2/3")
    assert (ev.live, ev.ended, ev.status) == (False, True, "finished")
    assert ev.feed_ts == 1_753_036_200 * 10**9


def test_an_array_of_games_and_unknown_keys() -> None:
    frame = b'[' + sample("soccer") + b',' + sample("cricket") + b',{"gameId":5,"newThing":{"x":[1]},"score":"1-0"}]'
    evs = DECODER(frame, 7)
    assert [e.game_id for e in evs] == ["90106111", "id2703680373085574", "5"]
    assert evs[2].home_score == 1 and evs[2].sport == ""


def test_a_bad_element_of_an_array_does_not_hide_the_others() -> None:
    frame = b'[{"gameId":1,"score":"2-0"},{"gameId":[1]},{"leagueAbbreviation":"nba"},{"gameId":2}]'
    with pytest.raises(FrameError) as info:
        DECODER(frame, 1)
    assert [e.game_id for e in info.value.events] == ["1", "2"]
    assert info.value.reason == "schema"


def test_heartbeats_decode_to_nothing() -> None:
    for text in (b'"ping"', b'"pong"', b'"PING"'):
        assert DECODER(text, 1) == ()
    k = Kernel()
    k.add_decoder("sports.polymarket", DECODER)
    got: list[Any] = []
    k.bus.subscribe(GameState, got.append)
    k.bus.subscribe(InputDropped, got.append)
    for raw in (b"ping", b"pong", b" ping\n"):
        k.process(10, "sports.polymarket", raw)
    assert got == [] and k.stats.dropped == 0


def test_scores() -> None:
    assert parse_score("3-16") == (3, 16)
    assert parse_score(" 3 - 16 ") == (3, 16)
    assert parse_score("") == (0, 0)
    assert parse_score("000-000|2-1|Bo5", "esports") == (2, 1)
    assert parse_score("4-6, 1-2", "tennis") == (0, 1)  # the set in progress is not counted
    assert parse_score("6-4, 6-6", "tennis") == (1, 0)
    assert parse_score("7-6(5), 6-7(3), 10-8", "tennis") == (2, 1)
    assert parse_score("7-6, 5-7, 6-5", "tennis") == (1, 1)
    assert parse_score("6-4", "tennis") == (1, 0)
    assert parse_score("5-4", "tennis") == (0, 0)
    assert parse_score("7-5, 5-7, 2-6") == (1, 2)  # sets recognised without a known sport
    assert parse_score("145/3-120/10", "cricket") == (145, 120)
    for garbage in ("abc", "1-2-3", "3:1", "6-4, x", "-", "1-", "½-1", "000|x|Bo3"):
        assert parse_score(garbage, "soccer" if garbage == "3:1" else "") is None, garbage


def test_elapsed() -> None:
    assert parse_elapsed("5:18") == (318, "period")
    assert parse_elapsed("05:09", "basketball") == (309, "period")
    assert parse_elapsed("74", "soccer") == (4440, "match")
    assert parse_elapsed("45+2", "soccer") == (2820, "match")
    assert parse_elapsed("74'", "soccer") == (4440, "match")
    assert parse_elapsed("67:30", "soccer") == (4050, "match")  # a soccer clock runs through the match
    assert parse_elapsed("1:02:03") == (3723, "period")
    for bad in ("", "HT", "5:x", "1:2:3:4", "+2"):
        assert parse_elapsed(bad) == (None, ""), bad


def test_sport_families() -> None:
    assert sport_of("NBA") == "basketball" and sport_of("cbb") == "basketball"
    assert sport_of("epl") == "soccer" and sport_of("ucl") == "soccer"
    assert sport_of("atp challenger") == "tennis" and sport_of("itf") == "tennis"
    assert sport_of("dota2") == "esports" and sport_of("ipl") == "cricket" and sport_of("nhl") == "hockey"
    assert sport_of("mlb") == "baseball" and sport_of("cfb") == "football"
    assert sport_of("curling") == "" and sport_of("") == ""
    assert sport_of("lol", "soccer") == "soccer"  # eventState.type wins
    assert sport_of("nfl", "Ice_Hockey") == "hockey"
    assert sport_of("nba", "weird") == "basketball"  # a type that names no family does not


def test_bare_ts() -> None:
    assert bare_ts(sample("soccer")) == iso_to_ns("2026-07-25T12:02:18.395759286Z")
    assert bare_ts(sample("cricket_finished")) is None  # a finish time is not the frame's time
    assert bare_ts(b'"ping"') is None and bare_ts(b"garbage updatedAt") is None
    two = (b'[{"gameId":1,"eventState":{"updatedAt":"2026-01-01T00:00:01Z"}},'
           b'{"gameId":2,"last_update":"2026-01-01T00:00:02Z"}]')
    assert bare_ts(two) == iso_to_ns("2026-01-01T00:00:02Z")


def test_bad_frames_are_counted_by_the_kernel_and_never_raise() -> None:
    k = Kernel()
    k.add_decoder("sports.polymarket", DECODER)
    states: list[GameState] = []
    k.bus.subscribe(GameState, states.append)
    bad = {
        b"not json at all": "malformed",
        b'{"gameId": 1, "score": ': "malformed",  # truncated
        b'{"gameId": [1, 2]}': "schema",
        b'{"gameId": 3, "live": "yes"}': "schema",
        b"42": "schema",
        b"[1, 2]": "schema",
        b'"hello"': "malformed",
        b'{"leagueAbbreviation": "nba", "score": "1-0"}': "no_game_id",
        b'{"gameId": "", "metadataGameId": ""}': "no_game_id",
        b"": "malformed",
    }
    for i, msg in enumerate(bad):
        k.process(100 + i, "sports.polymarket", msg)
    # partly bad: published anyway, and counted
    k.process(200, "sports.polymarket", b'{"gameId": 77, "leagueAbbreviation": "epl", "score": "two-one"}')
    k.process(201, "sports.polymarket", b'{"gameId": 78, "score": "1-0", "finishedTimestamp": "yesterday"}')
    want: dict[str, int] = {}
    for reason in bad.values():
        want[f"sports.polymarket:{reason}"] = want.get(f"sports.polymarket:{reason}", 0) + 1
    want["sports.polymarket:bad_score"] = 1
    want["sports.polymarket:bad_timestamp"] = 1
    assert dict(k.stats.drop_reasons) == want
    assert [(s.game_id, s.score, s.home_score, s.away_score, s.feed_ts) for s in states] == [
        ("77", "two-one", 0, 0, 0), ("78", "1-0", 1, 0, 0)]  # fmt: skip
    k.process(300, "sports.polymarket", sample("soccer"))
    assert states[-1].game_id == "90106111" and states[-1].ts == 300


def test_frame_leagues_peek() -> None:
    assert frame_leagues(sample("league_with_space")) == ["wta challenger"]
    assert frame_leagues(b'[{"leagueAbbreviation":"NBA"},{"x":1},7]') == ["nba", ""]
    assert frame_leagues(b"ping") is None and frame_leagues(b"{oops") is None and frame_leagues(b"[1,2]") is None


# ====================================================================================== feeds: plumbing

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Collector:
    """Reads the feed's records from the kernel's side of the door."""

    def __init__(self, recv: Any) -> None:
        self.recv = recv
        self.records: list[InboundRecord] = []

    async def until(self, pred: Callable[[InboundRecord], bool], timeout: float = 3.0) -> InboundRecord:
        with anyio.fail_after(timeout):
            while True:
                r = await self.recv.receive()
                self.records.append(r)
                if pred(r):
                    return r

    def events(self, cls: type) -> list[Any]:
        return [r.msg for r in self.records if r.source == "events" and isinstance(r.msg, cls)]

    def data(self, source: str) -> list[bytes]:
        return [r.msg for r in self.records if r.source == source]


def is_event(cls: type) -> Callable[[InboundRecord], bool]:
    return lambda r: r.source == "events" and isinstance(r.msg, cls)


@asynccontextmanager
async def running(feed: Any) -> AsyncIterator[Collector]:
    send, recv = anyio.create_memory_object_stream[InboundRecord](1000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed.run, send, LiveClock())
        try:
            yield Collector(recv)
        finally:
            tg.cancel_scope.cancel()
    recv.close()


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


# ====================================================================================== SportsFeed


class WsConn:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.received: list[str] = []
        self.got = asyncio.Event()

    async def wait_for(self, text: str, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while text not in self.received:
                self.got.clear()
                await self.got.wait()


Script = Callable[[WsConn, int], Awaitable[None]]


class FakeSports:
    """``/ws``: runs ``script(conn, index)`` on each connection, records what the client says."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.conns: list[WsConn] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def __aenter__(self) -> FakeSports:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        self.runner, self.port = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in self.conns:
            if not c.ws.closed:
                await c.ws.close()
        assert self.runner is not None
        await self.runner.cleanup()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = WsConn(ws)
        self.conns.append(conn)
        task = asyncio.ensure_future(self.script(conn, len(self.conns) - 1))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    conn.received.append(msg.data)
                    conn.got.set()
            await task
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            task.cancel()
        return ws


def sports_feed(url: str, **kw: Any) -> SportsFeed:
    params = {"ws_url": url, "backoff_initial_s": 0.05, "backoff_max_s": 0.1, **kw}
    return SportsFeed("sports", params)


@pytest.mark.anyio
async def test_ping_is_answered_and_frames_are_forwarded_untouched() -> None:
    frames = [sample("soccer").decode(), '[{"gameId":1,"score":"1-0"} ,\n {"gameId":2}]\n', "not json"]

    async def script(c: WsConn, i: int) -> None:
        await c.ws.send_str("ping")
        await c.wait_for("pong")
        for f in frames:
            await c.ws.send_str(f)
        await c.ws.send_bytes(b'{"gameId":3}')

    async with FakeSports(script) as srv:
        feed = sports_feed(srv.url)
        async with running(feed) as col:
            first = await col.until(lambda r: True)
            assert first.source == "events" and isinstance(first.msg, FeedConnected) and first.msg.feed == "sports"
            await col.until(lambda r: r.msg == b'{"gameId":3}')
        assert col.data("sports.polymarket") == [f.encode() for f in frames] + [b'{"gameId":3}']
        assert srv.conns[0].received == ["pong"]
        assert feed.stats["pings"] == 1 and feed.stats["pongs"] == 1 and feed.stats["forwarded"] == 4
        assert all(r.ts > 1_700_000_000 * 10**9 for r in col.records)
        # and the kernel decodes what was forwarded
        k = Kernel()
        k.add_decoder("sports.polymarket", DECODER)
        states: list[GameState] = []
        k.bus.subscribe(GameState, states.append)
        for r in col.records:
            k.process(r.ts, r.source, r.msg)
        assert [s.game_id for s in states] == ["90106111", "1", "2", "3"]
        assert dict(k.stats.drop_reasons) == {"sports.polymarket:malformed": 1}


@pytest.mark.anyio
async def test_server_close_reports_and_reconnects() -> None:
    async def script(c: WsConn, i: int) -> None:
        if i == 0:
            await c.ws.send_str(sample("esports").decode())
            await c.ws.close()
        else:
            await c.ws.send_str(sample("cricket").decode())

    async with FakeSports(script) as srv:
        feed = sports_feed(srv.url)
        async with running(feed) as col:
            await col.until(lambda r: r.msg == sample("cricket"))
        kinds = [type(r.msg).__name__ if r.source == "events" else r.source for r in col.records]
        assert kinds == ["FeedConnected", "sports.polymarket", "FeedDisconnected", "FeedConnected", "sports.polymarket"]
        assert "closed" in col.events(FeedDisconnected)[0].detail
        assert len(srv.conns) == 2 and feed.stats["reconnects"]["closed"] == 1


@pytest.mark.anyio
async def test_a_silent_connection_is_replaced() -> None:
    async def script(c: WsConn, i: int) -> None:
        await asyncio.sleep(10)  # neither ping nor frame (the socket stays open)

    async with FakeSports(script) as srv:
        feed = sports_feed(srv.url, ping_timeout_s=0.25)
        async with running(feed) as col:
            await col.until(is_event(FeedDisconnected))
            await col.until(is_event(FeedConnected))
        assert "ping_timeout" in col.events(FeedDisconnected)[0].detail
        assert feed.stats["reconnects"]["ping_timeout"] == 1


@pytest.mark.anyio
async def test_pings_keep_a_connection_alive_but_no_data_is_stale_once() -> None:
    resume = asyncio.Event()

    async def script(c: WsConn, i: int) -> None:
        sent = False
        for n in range(200):
            await c.ws.send_str("ping")
            if resume.is_set() and not sent:
                await c.ws.send_str(sample("soccer").decode())
                sent = True
            await asyncio.sleep(0.03)

    async with FakeSports(script) as srv:
        feed = sports_feed(srv.url, ping_timeout_s=0.2, stale_s=0.3)
        async with running(feed) as col:
            stale = await col.until(is_event(FeedStale))
            assert stale.msg.feed == "sports" and stale.msg.age_ns >= 300_000_000
            await anyio.sleep(0.45)  # more silence: no second FeedStale for the same silence
            resume.set()
            await col.until(lambda r: r.source == "sports.polymarket")
            await col.until(is_event(FeedStale))  # silence again after the update: a new one
        assert len(col.events(FeedStale)) == 2
        assert not col.events(FeedDisconnected) and len(srv.conns) == 1
        assert feed.stats["stale"] == 2 and feed.stats["pings"] >= 10


@pytest.mark.anyio
async def test_league_filter() -> None:
    frames = [
        b'{"gameId":1,"leagueAbbreviation":"nfl","score":"0-7"}',
        b'{"gameId":2,"leagueAbbreviation":"nba","score":"10-7"}',
        sample("league_with_space"),
        b'[{"gameId":3,"leagueAbbreviation":"nfl"},{"gameId":4,"leagueAbbreviation":"NBA"}]',
        b'[{"gameId":5,"leagueAbbreviation":"mlb"}]',
        b"garbage {",
        b'{"gameId":6}',
        b'{"gameId":7,"leagueAbbreviation":"nba","score":"end"}',
    ]

    async def script(c: WsConn, i: int) -> None:
        for f in frames:
            await c.ws.send_str(f.decode())

    async with FakeSports(script) as srv:
        feed = sports_feed(srv.url, leagues=["NBA", "wta challenger"])
        async with running(feed) as col:
            await col.until(lambda r: r.msg == frames[-1])
        assert col.data("sports.polymarket") == [frames[1], frames[2], frames[3], frames[5], frames[7]]
        assert feed.stats["filtered"] == 3 and feed.stats["frames"] == len(frames)


@pytest.mark.anyio
async def test_the_door_closing_ends_the_feed_cleanly() -> None:
    async def script(c: WsConn, i: int) -> None:
        for _ in range(100):
            await c.ws.send_str('{"gameId":1}')
            await asyncio.sleep(0.02)

    async with FakeSports(script) as srv:
        feed = sports_feed(srv.url)
        send, recv = anyio.create_memory_object_stream[InboundRecord](10)
        with anyio.fail_after(3):
            async with anyio.create_task_group() as tg:
                tg.start_soon(feed.run, send, LiveClock())
                await recv.receive()
                recv.close()  # the kernel stops: the feed's next send fails, and it returns
        assert feed.stats["connects"] == 1


def test_sports_feed_params() -> None:
    f = SportsFeed("s", {"leagues": ["NBA", " epl "]})
    assert f.leagues == {"nba", "epl"} and f.params.ws_url == "wss://sports-api.polymarket.com/ws"
    assert f.params.stale_s == 120 and f.params.ping_timeout_s == 20 and f.params.source == "sports.polymarket"
    with pytest.raises(ValueError, match="ws_url"):
        SportsFeed("s", {"ws_url": "http://x"})
    with pytest.raises(ValueError, match="stale_s"):
        SportsFeed("s", {"stale_s": 0})
    with pytest.raises(ValueError, match=r"leagues\[1\]"):
        SportsFeed("s", {"leagues": ["nba", " "]})
    with pytest.raises(ValueError, match="backoff_max_s"):
        SportsFeed("s", {"backoff_initial_s": 5, "backoff_max_s": 1})
    with pytest.raises(ValueError, match="unknown"):
        SportsFeed("s", {"unknown": 1})


# ====================================================================================== ScoreboardFeed

#: SYNTHETIC: shaped after ESPN's public scoreboard JSON
#: (site.api.espn.com/apis/site/v2/sports/basketball/nba/scoreboard), trimmed, values made up.
ESPN_BODY: dict[str, Any] = {
    "leagues": [{"id": "46", "uid": "s:40~l:46", "name": "National Basketball Association", "abbreviation": "NBA",
                 "slug": "nba", "season": {"year": 2025, "type": {"id": "2", "type": 2, "name": "Regular Season"}}}],
    "season": {"type": 2, "year": 2025},
    "day": {"date": "2025-01-26"},
    "events": [
        {
            "id": "401705187", "uid": "s:40~l:46~e:401705187", "date": "2025-01-26T20:30Z",
            "name": "Boston Celtics at Los Angeles Lakers", "shortName": "BOS @ LAL",
            "competitions": [{
                "id": "401705187", "date": "2025-01-26T20:30Z",
                "competitors": [
                    {"id": "13", "uid": "s:40~l:46~t:13", "type": "team", "order": 0, "homeAway": "home",
                     "team": {"id": "13", "abbreviation": "LAL", "displayName": "Los Angeles Lakers",
                              "shortDisplayName": "Lakers"}, "score": "98"},
                    {"id": "2", "uid": "s:40~l:46~t:2", "type": "team", "order": 1, "homeAway": "away",
                     "team": {"id": "2", "abbreviation": "BOS", "displayName": "Boston Celtics",
                              "shortDisplayName": "Celtics"}, "score": "102"},
                ],
                "status": {"clock": 318.0, "displayClock": "5:18", "period": 4,
                           "type": {"id": "2", "name": "STATUS_IN_PROGRESS", "state": "in", "completed": False}},
            }],
            "status": {"clock": 318.0, "displayClock": "5:18", "period": 4,
                       "type": {"id": "2", "name": "STATUS_IN_PROGRESS", "state": "in", "completed": False,
                                "description": "In Progress", "detail": "5:18 - 4th Quarter",
                                "shortDetail": "5:18 - 4th"}},
        },
        {
            "id": "401705188", "date": "2025-01-26T18:00Z", "name": "Miami Heat at New York Knicks",
            "competitions": [{"id": "401705188", "competitors": [
                {"id": "2", "homeAway": "away", "team": {"displayName": "Miami Heat"}, "score": "110"},
                {"id": "18", "homeAway": "home", "team": {"displayName": "New York Knicks"}, "score": "117"},
            ]}],
            "status": {"clock": 0.0, "displayClock": "0.0", "period": 4,
                       "type": {"id": "3", "name": "STATUS_FINAL", "state": "post", "completed": True,
                                "description": "Final", "detail": "Final", "shortDetail": "Final"}},
        },
        {
            "id": "401705189", "date": "2025-01-27T01:00Z", "name": "Denver Nuggets at Phoenix Suns",
            "competitions": [{"id": "401705189", "competitors": [
                {"id": "21", "homeAway": "home", "team": {"displayName": "Phoenix Suns"}, "score": "0"},
                {"id": "7", "homeAway": "away", "team": {"displayName": "Denver Nuggets"}, "score": "0"},
            ]}],
            "status": {"clock": 0.0, "displayClock": "0.0", "period": 0,
                       "type": {"id": "1", "name": "STATUS_SCHEDULED", "state": "pre", "completed": False}},
        },
    ],
}  # fmt: skip

GENERIC_MAP = {
    "items": "data.games", "game_id": "gid", "home": "teams.h", "away": "teams.a", "home_score": "pts.0",
    "away_score": "pts[1]", "period": "q", "clock": "clock", "clock_elapsed": True, "live": "state=live",
    "ended": "done", "feed_ts": "updated", "league": "=NBA", "slug": "$.meta.slug",
}  # fmt: skip


def generic_body(home_pts: int = 3) -> bytes:
    return json.dumps({"meta": {"slug": "board"}, "data": {"games": [
        {"gid": 7, "teams": {"h": "A", "a": "B"}, "pts": [home_pts, 1], "q": "Q2", "clock": "5:18",
         "state": "live", "done": False, "updated": "2025-01-26T20:30:00Z"},
        {"gid": "x8", "teams": {"h": "C", "a": "D"}, "pts": ["0", "0"], "q": "", "state": "pre",
         "updated": 1_737_923_400_000},
    ]}}, indent=1).encode()  # fmt: skip


class FakeBoard:
    """GET /<path>: answers ``responses`` in order (status, body), then the last one forever."""

    def __init__(self, path: str, responses: list[tuple[int, bytes]]) -> None:
        self.path = path
        self.responses = responses
        self.hits = 0
        self.queries: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    def url(self, query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{self.path}" + (f"?{query}" if query else "")

    async def __aenter__(self) -> FakeBoard:
        app = web.Application()
        app.router.add_get(self.path, self._get)
        self.runner, self.port = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def _get(self, request: web.Request) -> web.Response:
        status, body = self.responses[min(self.hits, len(self.responses) - 1)]
        self.hits += 1
        self.queries.append(request.query_string)
        self.headers.append(dict(request.headers))
        return web.Response(status=status, body=body, content_type="application/json")

    async def wait_hits(self, n: int, timeout: float = 3.0) -> None:
        with anyio.fail_after(timeout):
            while self.hits < n:
                await anyio.sleep(0.01)


def board_feed(url: str, **kw: Any) -> ScoreboardFeed:
    params = {"url": url, "interval_s": 0.05, "backoff_initial_s": 0.05, "backoff_max_s": 0.1, **kw}
    return ScoreboardFeed("board", params)


def decode_states(msg: bytes) -> list[GameState]:
    return list(SCOREBOARD_DECODER(msg, 5))


@pytest.mark.anyio
async def test_generic_mapping_envelope_and_unchanged_bodies() -> None:
    body = generic_body()
    async with FakeBoard("/v1/scores", [(200, body)]) as srv:
        feed = board_feed(srv.url("apikey=SECRET&date=20250126&token=t0k"), **GENERIC_MAP)
        async with running(feed) as col:
            await col.until(lambda r: r.source == "sports.scoreboard")
            await srv.wait_hits(4)
        assert srv.queries[0] == "apikey=SECRET&date=20250126&token=t0k"
        (msg,) = col.data("sports.scoreboard")  # identical bodies after the first are not sent
        assert feed.stats["unchanged"] >= 2 and feed.stats["sent"] == 1
        assert [type(e).__name__ for e in col.events(object)] == ["FeedConnected"]
        assert b"SECRET" not in msg and b"t0k" not in msg
        env = msgspec.json.decode(msg)
        assert env["url"] == srv.url("apikey=REDACTED&date=20250126&token=REDACTED")
        assert env["map"] == GENERIC_MAP
        raw = msgspec.json.decode(msg, type=dict[str, msgspec.Raw])["body"]
        assert bytes(raw) == body.strip()  # embedded untouched
        a, b = decode_states(msg)
        assert (a.game_id, a.home, a.away, a.home_score, a.away_score) == ("7", "A", "B", 3, 1)
        assert (a.period, a.clock, a.elapsed_s, a.elapsed_scope) == ("Q2", "5:18", 318, "period")
        assert (a.live, a.ended) == (True, False)
        assert (a.league, a.sport, a.slug, a.feed) == ("NBA", "basketball", "board", "sports.scoreboard")
        assert a.feed_ts == iso_to_ns("2025-01-26T20:30:00Z")
        assert (b.game_id, b.home_score, b.live, b.ended, b.clock, b.elapsed_s) == ("x8", 0, False, False, "", None)
        assert b.feed_ts == 1_737_923_400_000 * 10**6


@pytest.mark.anyio
async def test_espn_preset() -> None:
    body = json.dumps(ESPN_BODY).encode()
    async with FakeBoard("/apis/site/v2/sports/basketball/nba/scoreboard", [(200, body)]) as srv:
        feed = board_feed(srv.url("dates=20250126"), preset="espn")
        assert feed.mapping == {**ESPN_PRESET, "sport": "=basketball"}
        async with running(feed) as col:
            r = await col.until(lambda r: r.source == "sports.scoreboard")
        live, final, pre = decode_states(r.msg)
        assert (live.game_id, live.home, live.away) == ("401705187", "Los Angeles Lakers", "Boston Celtics")
        assert (live.home_score, live.away_score, live.period, live.clock) == (98, 102, "4", "5:18")
        assert (live.status, live.live, live.ended) == ("STATUS_IN_PROGRESS", True, False)
        assert (live.league, live.sport) == ("nba", "basketball")
        assert live.elapsed_s is None and live.feed_ts == 0  # ESPN's clock counts down; no update time
        assert (final.home, final.away, final.home_score, final.away_score) == ("New York Knicks", "Miami Heat", 117, 110)
        assert (final.status, final.live, final.ended) == ("STATUS_FINAL", False, True)
        assert (pre.game_id, pre.home_score, pre.away_score) == ("401705189", 0, 0)
        assert (pre.live, pre.ended, pre.period) == (False, False, "0")


@pytest.mark.anyio
async def test_http_errors_disconnect_then_recover() -> None:
    responses = [(200, generic_body(3)), (500, b"boom: bad key SECRETKEY"), (503, b"busy"), (200, generic_body(4))]
    async with FakeBoard("/scores", responses) as srv:
        feed = board_feed(srv.url("key=SECRETKEY"), headers={"X-Api-Token": "HEADERSECRET"}, **GENERIC_MAP)
        async with running(feed) as col:
            await col.until(lambda r: r.source == "sports.scoreboard" and decode_states(r.msg)[0].home_score == 4)
        kinds = [type(r.msg).__name__ if r.source == "events" else r.source for r in col.records]
        assert kinds == ["FeedConnected", "sports.scoreboard", "FeedDisconnected", "FeedConnected", "sports.scoreboard"]
        assert col.events(FeedDisconnected)[0].detail == "HTTP 500: boom: bad key REDACTED"
        assert not any(b"SECRET" in (r.msg if isinstance(r.msg, bytes) else msgspec.json.encode(r.msg))
                       for r in col.records)
        assert srv.headers[0]["X-Api-Token"] == "HEADERSECRET"
        assert feed.stats["failures"] == 2
        assert [s.home_score for m in col.data("sports.scoreboard") for s in decode_states(m) if s.game_id == "7"] == [3, 4]


@pytest.mark.anyio
async def test_a_dead_scoreboard_is_reported_and_goes_stale_once() -> None:
    async with FakeBoard("/scores", [(200, b"<html>maintenance</html>"), (500, b"")]) as srv:
        feed = board_feed(srv.url(), stale_s=0.3, **GENERIC_MAP)
        async with running(feed) as col:
            await col.until(is_event(FeedStale))
            await srv.wait_hits(srv.hits + 3)
        assert not col.events(FeedConnected) and len(col.events(FeedDisconnected)) == 1
        assert len(col.events(FeedStale)) == 1
        (msg,) = col.data("sports.scoreboard")  # the HTML is journaled (as a JSON string) and refused
        k = Kernel()
        k.add_decoder("sports.scoreboard", SCOREBOARD_DECODER)
        k.process(1, "sports.scoreboard", msg)
        assert dict(k.stats.drop_reasons) == {"sports.scoreboard:bad_body": 1}


def envelope(body: Any, **mapping: Any) -> bytes:
    return msgspec.json.encode({"url": "http://x/s", "map": mapping or {"game_id": "id"}, "body": body})


def test_scoreboard_decoder_refusals_via_the_kernel() -> None:
    k = Kernel()
    k.add_decoder("sports.scoreboard", SCOREBOARD_DECODER)
    states: list[GameState] = []
    k.bus.subscribe(GameState, states.append)
    games = [{"id": 1, "s": "2"}, {"s": "1"}, {"id": 3, "s": "abc"}, {"id": {"x": 1}}, {"id": 5, "s": 4}]
    k.process(1, "sports.scoreboard", envelope(games, game_id="id", home_score="s"))
    assert [(s.game_id, s.home_score) for s in states] == [("1", 2), ("5", 4)]
    k.process(2, "sports.scoreboard", b"nope")
    k.process(3, "sports.scoreboard", b'{"url": "u"}')  # no map, no body
    k.process(4, "sports.scoreboard", envelope({"games": 3}, items="games", game_id="id"))
    k.process(5, "sports.scoreboard", envelope({"other": []}, items="games", game_id="id"))
    k.process(6, "sports.scoreboard", envelope([{"id": 1}], home="a[b"))
    k.process(7, "sports.scoreboard", envelope([{"id": 1}], home="x"))  # no game_id path
    assert dict(k.stats.drop_reasons) == {
        "sports.scoreboard:bad_game": 1, "sports.scoreboard:malformed": 1, "sports.scoreboard:schema": 1,
        "sports.scoreboard:no_items": 2, "sports.scoreboard:bad_map": 2,
    }  # fmt: skip
    k.process(8, "sports.scoreboard", envelope({"g": [{"id": 9}]}, items="$.g", game_id="id"))
    k.process(9, "sports.scoreboard", envelope({"id": 10, "live": "TRUE"}, game_id="id", live="live"))
    assert [s.game_id for s in states][-2:] == ["9", "10"] and states[-1].live is True


def test_paths() -> None:
    doc = {"a": [{"k": "x", "v": 1}, {"k": "y", "v": 2, "n": {"ok": True}}], "b": {"c.d": 5}, "t": True}
    game = doc["a"][1]
    assert resolve(compile_path("a.0.v"), doc, doc) == 1
    assert resolve(compile_path("a[-1].v"), doc, doc) == 2
    assert resolve(compile_path("a[k=y].n.ok"), doc, doc) is True
    assert resolve(compile_path("a[n.ok=true].k"), doc, doc) == "y"
    assert resolve(compile_path("a[k=z].v"), doc, doc) is None
    assert resolve(compile_path("a.5"), doc, doc) is None and resolve(compile_path("b.c"), doc, doc) is None
    assert resolve(compile_path("v"), game, doc) == 2 and resolve(compile_path("$.t"), game, doc) is True
    assert resolve(compile_path("=soccer"), game, doc) == "soccer"
    assert resolve(compile_path("k=y"), game, doc) is True and resolve(compile_path("k=x"), game, doc) is False
    assert resolve(compile_path("missing=x"), game, doc) is False
    for bad in ("", "a..b", "a[", "a]", "a[x]", "a[0]b", "a=b=c"):
        with pytest.raises(ValueError):
            compile_path(bad)


def test_redact_url_and_params() -> None:
    assert redact_url("https://u:pw@h.example/x?api_key=1&date=2&Signature=s") == \
        "https://h.example/x?api_key=REDACTED&date=2&Signature=REDACTED"  # fmt: skip
    assert redact_url("http://h/x") == "http://h/x"
    with pytest.raises(ValueError, match="game_id"):
        ScoreboardFeed("b", {"url": "http://h/x"})
    with pytest.raises(ValueError, match=r"params\.home"):
        ScoreboardFeed("b", {"url": "http://h/x", "game_id": "id", "home": "a[x]"})
    with pytest.raises(ValueError, match="url"):
        ScoreboardFeed("b", {"url": "ftp://h/x", "game_id": "id"})
    with pytest.raises(ValueError, match="preset"):
        ScoreboardFeed("b", {"url": "http://h/x", "preset": "yahoo"})
    f = ScoreboardFeed("b", {"url": "https://site.api.espn.com/apis/site/v2/sports/soccer/eng.1/scoreboard",
                             "preset": "espn",
                             "home": "competitions.0.competitors[homeAway=home].team.abbreviation"})  # fmt: skip
    assert f.mapping["sport"] == "=soccer" and f.mapping["home"].endswith("abbreviation")
    assert f.params.interval_s == 5 and f.params.source == "sports.scoreboard"
