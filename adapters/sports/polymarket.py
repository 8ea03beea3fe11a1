"""Polymarket's sports WebSocket feed (``wss://sports-api.polymarket.com/ws``).

The channel needs no subscription and no authentication: once connected, the server broadcasts a
JSON ``sport_result`` object per game update, for every live game, and sends the text ``ping``
every 5 s, closing a connection that has not answered ``pong`` within 10 s.

* **Forwarding.** Every frame other than the heartbeat is sent untouched, as its bytes, through
  the kernel's one door as source ``sports.polymarket`` (decoded there by
  :mod:`adapters.sports.wire`), stamped with the live clock at receipt.
* **Heartbeat.** A ``ping`` is answered ``pong`` at once. Heartbeats are transport, not data:
  they are counted in :attr:`SportsFeed.stats` and never sent to the kernel.
* **Liveness.** Neither a ``ping`` nor a frame for ``ping_timeout_s`` means the connection is
  dead (a half-open socket): it is closed and replaced. The time the feed spends waiting for the
  kernel to take a frame (back-pressure) does not count against the connection.
* **Staleness.** No game update (any JSON frame, before the league filter) for ``stale_s``
  yields one ``FeedStale``; the next one comes only after updates resumed and stopped again. A
  quiet feed is normal when no game is live.
* **Loss.** A lost connection is reported as ``FeedDisconnected`` and replaced after an
  exponential backoff with jitter (reset after a connection on which the server was heard); a
  new connection is reported as ``FeedConnected``. Health events go through the door as source
  ``events``. A failure never ends the feed; the kernel closing its input stream ends it cleanly.
  One HTTP session is kept across reconnects, so the server's session-affinity cookie is kept.
* **League filter.** ``leagues`` (optional) forwards only frames whose ``leagueAbbreviation`` is
  listed (case-insensitive; an array is forwarded whole when any of its games is listed). Other
  frames are counted as ``filtered``; a frame whose league cannot be read is forwarded, so the
  kernel counts and journals the bad input rather than the feed hiding it.

    [[feeds]]
    kind = "polymarket-sports"
    params = { leagues = ["nba", "epl"], stale_s = 300 }
"""

from __future__ import annotations

import inspect
import math
import random
from collections import Counter
from typing import Annotated, Any

import aiohttp
import anyio
import attrs
import msgspec
from anyio.abc import ObjectSendStream
from loguru import logger

from polybot.clock import Clock
from polybot.events import FeedConnected, FeedDisconnected, FeedStale
from polybot.feeds import Feed, typed_params, door_closed as _door_closed, describe as _describe
from polybot.kernel import InboundRecord
from polybot.strategy import StrategyParams

from .wire import SOURCE

__all__ = ["DEFAULT_WS_URL", "SportsFeed", "frame_leagues"]

DEFAULT_WS_URL = "wss://sports-api.polymarket.com/ws"
#: Largest frame accepted (game updates are a few hundred bytes).
MAX_FRAME_BYTES = 4 * 1024 * 1024
#: Bound of the TCP + TLS + upgrade handshake.
CONNECT_TIMEOUT_S = 10.0
#: Bound of a graceful websocket close; after it the transport is simply dropped.
CLOSE_TIMEOUT_S = 1.0

_WS_DECODE_TEXT = "decode_text" in inspect.signature(aiohttp.ClientSession.ws_connect).parameters
_TEXT, _BINARY = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
_CLOSING = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)

PosFloat = Annotated[float, msgspec.Meta(gt=0)]


# ---------------------------------------------------------------------------------- frame peek


class _LeagueRef(msgspec.Struct):
    leagueAbbreviation: str | None = None


_ONE_REF = msgspec.json.Decoder(_LeagueRef)
_REF_LIST = msgspec.json.Decoder(list[_LeagueRef])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


def frame_leagues(frame: bytes) -> list[str] | None:
    """The leagues (lower case, stripped) of the games in a frame (an object or an array of
    them); None when the frame cannot be read as game objects. Cheap; never raises."""
    try:
        c = frame.lstrip()[:1]
        if c == b"{":
            refs = [_ONE_REF.decode(frame)]
        elif c == b"[":
            try:
                refs = _REF_LIST.decode(frame)
            except msgspec.ValidationError:  # one odd element must not hide the others
                refs = []
                for raw in _RAW_LIST.decode(frame):
                    try:
                        refs.append(_ONE_REF.decode(raw))
                    except msgspec.ValidationError:
                        pass
                if not refs:
                    return None
        else:
            return None
    except (msgspec.MsgspecError, ValueError, TypeError):
        return None
    return [(r.leagueAbbreviation or "").strip().lower() for r in refs]


@attrs.define(eq=False)
class _Conn:
    """One connection attempt."""

    opened: bool = False
    heard: bool = False  # the server sent something (a ping or a frame)
    last_heard: float = 0.0  # monotonic time of the last ping or frame
    sending: bool = False  # waiting for the kernel to take a frame
    scope: anyio.CancelScope | None = None
    kind: str = ""  # why it ended: connect_failed | closed | error | send_failed | ping_timeout
    detail: str = ""

    def fail(self, kind: str, detail: str) -> None:
        if not self.kind:
            self.kind, self.detail = kind, detail
        if self.scope is not None:
            self.scope.cancel()


# ---------------------------------------------------------------------------------- the feed


class SportsFeed(Feed):
    """Polymarket's sports WebSocket: live game states (scores, periods, clocks) of every game."""

    kind = "polymarket-sports"

    class Params(StrategyParams):
        ws_url: str = DEFAULT_WS_URL
        source: str = SOURCE
        #: no game update for this long -> one FeedStale
        stale_s: PosFloat = 120.0
        #: no server ping and no frame for this long -> the connection is dead, replace it
        ping_timeout_s: PosFloat = 20.0
        backoff_initial_s: PosFloat = 1.0
        backoff_max_s: PosFloat = 60.0
        #: forward only these leagues' updates (``leagueAbbreviation``); empty = all
        leagues: list[str] = []

    def __init__(self, name: str = "polymarket-sports", params: Any = None) -> None:
        params = typed_params(self.Params, f"sports feed {name!r}", params)
        _validate(name, params)
        super().__init__(name, params)
        self.leagues = frozenset(lg.strip().lower() for lg in params.leagues)
        self.stats: dict[str, Any] = {
            "frames": 0, "binary_frames": 0, "bytes": 0, "forwarded": 0, "filtered": 0,
            "pings": 0, "pongs": 0, "server_pongs": 0, "connects": 0, "disconnects": 0,
            "reconnects": Counter(), "stale": 0,
        }  # fmt: skip
        self._rng = random.Random()
        self._send: ObjectSendStream[InboundRecord] | None = None
        self._clock: Clock | None = None
        self._session: aiohttp.ClientSession | None = None
        self._last_data = 0.0  # monotonic time of the last game update (or of the start)
        self._stale_reported = False
        self._conn: _Conn | None = None

    @property
    def connected(self) -> bool:
        c = self._conn
        return c is not None and c.opened and not c.kind

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        p = self.params
        self._send, self._clock = send, clock
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S)
        session = aiohttp.ClientSession(timeout=timeout)
        self._session = session
        self._last_data = anyio.current_time()
        self._stale_reported = False
        logger.info("sports feed {}: {} ({})", self.name, p.ws_url,
                    f"leagues {', '.join(sorted(self.leagues))}" if self.leagues else "all leagues")  # fmt: skip
        try:
            async with send:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._stale_watch, name=f"{self.name}-stale")
                    await self._connect_loop()
        except BaseException as exc:
            if not _door_closed(exc):
                raise
            logger.info("sports feed {}: the kernel's input stream is closed; stopping", self.name)
        finally:
            self._session = None
            with anyio.CancelScope(shield=True):
                await session.close()
            s = self.stats
            logger.info("sports feed {}: stopped: {} frames ({} forwarded, {} filtered), {} pings answered, "
                        "{} connects, reconnects {}, {} stale", self.name, s["frames"], s["forwarded"],
                        s["filtered"], s["pongs"], s["connects"], dict(s["reconnects"]), s["stale"])  # fmt: skip

    # ------------------------------------------------------------------------------ connections

    async def _connect_loop(self) -> None:
        p = self.params
        assert self._send is not None and self._clock is not None
        send, clock = self._send, self._clock
        backoff = p.backoff_initial_s
        while True:
            try:
                conn = await self._connection()
                self.stats["reconnects"][conn.kind] += 1
                if conn.heard:
                    backoff = p.backoff_initial_s  # the server was alive: start the backoff over
                delay = backoff / 2 + self._rng.uniform(0, backoff / 2)
                backoff = min(backoff * 2, p.backoff_max_s)
                if conn.opened:
                    self.stats["disconnects"] += 1
                    ts = clock.now()
                    ev = FeedDisconnected(ts=ts, feed=self.name, detail=f"{conn.kind}: {conn.detail}")
                    await send.send(InboundRecord(ts, "events", ev))
                logger.warning("sports feed {}: {}: {}; reconnecting in {:.2f}s", self.name, conn.kind, conn.detail, delay)
            except Exception as exc:  # noqa: BLE001 - a bug here must not end the feed
                if _door_closed(exc):
                    raise
                logger.opt(exception=exc).error("sports feed {}: connection handling failed; retrying", self.name)
                self.stats["reconnects"]["internal_error"] += 1
                delay = backoff
                backoff = min(backoff * 2, p.backoff_max_s)
            await anyio.sleep(delay)

    async def _connection(self) -> _Conn:
        """One connection: connect, answer pings, forward frames until it fails. Returns why it
        ended."""
        p = self.params
        assert self._send is not None and self._clock is not None and self._session is not None
        send, clock = self._send, self._clock
        conn = _Conn()
        kw: dict[str, Any] = {"autoping": True, "max_msg_size": MAX_FRAME_BYTES}
        if _WS_DECODE_TEXT:
            kw["decode_text"] = False
        try:
            ws = await self._session.ws_connect(p.ws_url, **kw)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
            if _door_closed(exc):
                raise
            conn.kind, conn.detail = "connect_failed", _describe(exc)
            return conn
        try:
            conn.opened = True
            conn.last_heard = anyio.current_time()
            self._conn = conn
            self.stats["connects"] += 1
            ts = clock.now()
            await send.send(InboundRecord(ts, "events", FeedConnected(ts=ts, feed=self.name, detail=p.ws_url)))
            logger.info("sports feed {}: connected to {}", self.name, p.ws_url)
            async with anyio.create_task_group() as tg:
                conn.scope = tg.cancel_scope
                tg.start_soon(self._watchdog, conn)
                await self._reader(conn, ws)
        except Exception as exc:  # noqa: BLE001 - one connection's failure never kills the feed
            if _door_closed(exc):
                raise
            if not conn.kind:
                conn.kind, conn.detail = "error", _describe(exc)
                logger.opt(exception=exc).debug("sports feed {}: connection error", self.name)
        finally:
            if not conn.kind:  # cancelled from outside
                conn.kind, conn.detail = "cancelled", "the feed is stopping"
            with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                await ws.close()  # if it times out, aiohttp drops the transport
        return conn

    async def _reader(self, conn: _Conn, ws: Any) -> None:
        assert self._send is not None and self._clock is not None
        send, clock, source, stats, leagues = self._send, self._clock, self.params.source, self.stats, self.leagues
        now = anyio.current_time
        while True:
            msg = await ws.receive()
            t = msg.type
            if t is _TEXT or t is _BINARY:
                ts = clock.now()
                conn.last_heard = now()
                conn.heard = True
                data = msg.data
                if data.__class__ is str:
                    data = data.encode()
                elif data.__class__ is not bytes:
                    data = bytes(data)
                stats["frames"] += 1
                stats["bytes"] += len(data)
                if t is _BINARY:
                    stats["binary_frames"] += 1
                if len(data) <= 8:
                    word = data.strip().lower()
                    if word == b"ping":
                        stats["pings"] += 1
                        try:
                            await ws.send_str("pong")
                        except Exception as exc:  # noqa: BLE001
                            conn.fail("send_failed", f"answering ping: {_describe(exc)}")
                            return
                        stats["pongs"] += 1
                        continue
                    if word == b"pong":
                        stats["server_pongs"] += 1
                        continue
                self._last_data = conn.last_heard
                if self._stale_reported:
                    self._stale_reported = False
                    logger.info("sports feed {}: game updates again", self.name)
                if leagues:
                    found = frame_leagues(data)
                    if found is not None and not any(lg in leagues for lg in found):
                        stats["filtered"] += 1
                        continue
                conn.sending = True
                try:
                    await send.send(InboundRecord(ts, source, data))
                finally:
                    conn.sending = False
                    conn.last_heard = max(conn.last_heard, now())  # the wait was ours, not the server's
                stats["forwarded"] += 1
            elif t in _CLOSING:
                code = ws.close_code if ws.close_code is not None else msg.data
                conn.fail("closed", f"closed by the server (code {code})")
                return
            elif t is aiohttp.WSMsgType.ERROR:
                conn.fail("error", _describe(msg.data) if isinstance(msg.data, BaseException) else str(msg.data))
                return
            # protocol-level ping/pong frames are answered by aiohttp

    async def _watchdog(self, conn: _Conn) -> None:
        """Replace the connection when the server has been silent for ``ping_timeout_s``."""
        limit = self.params.ping_timeout_s
        while True:
            quiet = anyio.current_time() - conn.last_heard
            if quiet >= limit and not conn.sending:
                conn.fail("ping_timeout", f"no ping and no frame for {quiet:.2f}s")
                return
            await anyio.sleep(max(limit - quiet, limit / 20))

    async def _stale_watch(self) -> None:
        """One FeedStale per silence of ``stale_s`` without a game update."""
        p = self.params
        assert self._send is not None and self._clock is not None
        send, clock = self._send, self._clock
        while True:
            age = anyio.current_time() - self._last_data
            if age >= p.stale_s and not self._stale_reported:
                self._stale_reported = True
                self.stats["stale"] += 1
                ts = clock.now()
                detail = f"no game update for {age:.1f}s" + ("" if self.connected else " (not connected)")
                ev = FeedStale(ts=ts, feed=self.name, detail=detail, age_ns=int(age * 1e9))
                await send.send(InboundRecord(ts, "events", ev))
                logger.warning("sports feed {}: stale: {}", self.name, detail)
                await anyio.sleep(p.stale_s)
            else:
                await anyio.sleep(p.stale_s - age if age < p.stale_s else p.stale_s)


def _validate(name: str, p: Any) -> None:
    """Bounds the type system does not enforce on a directly built Params; errors name the field."""
    where = f"sports feed {name!r}: params"

    def bad(field: str, what: str) -> ValueError:
        return ValueError(f"{where}.{field} {what}, got {getattr(p, field)!r}")

    for f in ("stale_s", "ping_timeout_s", "backoff_initial_s", "backoff_max_s"):
        v = getattr(p, f)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
            raise bad(f, "must be a positive number of seconds")
    if p.backoff_max_s < p.backoff_initial_s:
        raise bad("backoff_max_s", f"must be >= backoff_initial_s ({p.backoff_initial_s})")
    if not isinstance(p.ws_url, str) or not p.ws_url.startswith(("ws://", "wss://")):
        raise bad("ws_url", "must be a ws:// or wss:// URL")
    if not isinstance(p.source, str) or not p.source:
        raise bad("source", "must not be empty")
    for i, lg in enumerate(p.leagues):
        if not isinstance(lg, str) or not lg.strip():
            raise ValueError(f"{where}.leagues[{i}] must be a non-empty league abbreviation, got {lg!r}")
