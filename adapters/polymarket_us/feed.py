"""The Polymarket US market-data feed: catalog and books over REST, then the markets WebSocket.

Every answer and frame reaches the kernel through its one door, raw, stamped with the live clock,
*before* the feed acts on it: REST answers as ``polymarket_us.rest`` records (the envelope of
:func:`.wire.rest_input`), WebSocket frames as ``polymarket_us.market`` records, verbatim.

* **Start.** The catalog: ``GET {gateway_url}/v1/market/slug/<slug>`` for each of ``markets`` and
  ``GET {gateway_url}/v1/events/slug/<slug>`` for each of ``events`` (all the event's markets);
  a slug the venue does not know is logged and skipped, other failures are retried with backoff.
  Then each market's book (``GET /v1/markets/<slug>/book``), so the kernel has every book
  before the stream starts.
* **Stream.** The markets WebSocket (``{ws_url}/v1/ws/markets``), its handshake signed with the
  API key (Ed25519, :func:`.auth.sign_headers`), subscribed to ``MARKET_DATA`` (a full book each
  frame; ``lite``: ``MARKET_DATA_LITE``, the best prices only, and then no book at all: one
  fetched at the start would go stale while looking healthy) and ``TRADE`` for every market.
* **Loss.** A lost connection is reported as ``FeedDisconnected`` (every asset: the kernel marks
  the books unhealthy), then replaced after an exponential backoff with jitter and subscribed
  again (``FeedConnected``); once every market has had its book again, ``FeedResynced``. A
  market without a book frame ``snapshot_timeout_s`` after subscribing is fetched over REST.
* **Staleness.** No frame at all (heartbeats included) for ``stale_s``: ``FeedStale`` for every
  asset, and the connection is replaced.
* **Resync.** Attached to a kernel, the feed listens to ``BookHealth``: a book of ours found
  unhealthy (a crossed book, a frame that could not be read) is fetched again over REST
  (``resync_on_unhealthy``, at most once per ``resync_min_interval_s`` per market); and to
  ``MarketStatus``: a market that closed has its settlement asked for
  (``/v1/markets/<slug>/settlement``, every ``settlement_poll_s`` until it is there), which the
  decoder turns into ``MarketResolved``.
* **Without an API key** the WebSocket cannot be used: with ``poll_s`` > 0 the books are polled
  over REST (public) every ``poll_s``; with ``poll_s = 0`` the feed refuses to start, naming the
  secrets it needs (``pmus_key_id``, ``pmus_secret_key``).

Credentials come from the daemon's config (:meth:`UsMarketFeed.configure`, called by the daemon
with the loaded config: the secrets file named by ``[secrets] file``, or the environment
``POLYBOT_PMUS_KEY_ID`` / ``POLYBOT_PMUS_SECRET_KEY``). They are never logged: the key id shows
as its first 8 characters.

    [[feeds]]
    kind = "polymarket-us"
    params = { markets = ["nba-lal-bos-2026-01-15"], events = ["super-bowl-2026"] }
"""

from __future__ import annotations

import inspect
import math
import os
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import aiohttp
import anyio
import attrs
import msgspec
from anyio.abc import ObjectSendStream, TaskGroup
from loguru import logger

from polybot.clock import Clock
from polybot.events import (
    BookHealth,
    Event,
    FeedConnected,
    FeedDisconnected,
    FeedResynced,
    FeedStale,
    MarketInfo,
    MarketResolved,
    MarketStatus,
)
from polybot.feeds import Feed, describe as _describe, door_closed as _door_closed, typed_params
from polybot.kernel import FrameError, InboundRecord
from polybot.strategy import StrategyParams

from . import MARKET_SOURCE, REST_SOURCE, asset_ids, parse_asset, slug_of_market
from .auth import AuthError, check_secret, describe_key, sign_headers
from .wire import CLOSED_STATES, decode_rest, rest_input

__all__ = ["UsFeedAuthError", "UsFeedConfigError", "UsMarketFeed"]

API_URL = "https://api.polymarket.us"
GATEWAY_URL = "https://gateway.polymarket.us"
WS_URL = "wss://api.polymarket.us"
WS_PATH = "/v1/ws/markets"
KEY_ID = "pmus_key_id"
SECRET_KEY = "pmus_secret_key"

#: Largest frame accepted (a full book of a deep market is small; this is a safety bound).
MAX_FRAME_BYTES = 16 * 1024 * 1024
REST_TIMEOUT_S = 10.0
REST_ATTEMPTS = 3
CLOSE_TIMEOUT_S = 1.0
NS = 1_000_000_000

_WS_DECODE_TEXT = "decode_text" in inspect.signature(aiohttp.ClientSession.ws_connect).parameters
PosFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]


class UsFeedConfigError(ValueError):
    """The feed cannot run as configured (e.g. no API key and no REST polling)."""


class UsFeedAuthError(RuntimeError):
    """The venue refused the API key (the WebSocket handshake answered 401/403)."""


class _PeekSlug(msgspec.Struct):
    marketSlug: str = ""


class _PeekFrame(msgspec.Struct):
    marketData: _PeekSlug | None = None


_PEEK = msgspec.json.Decoder(_PeekFrame)


def _book_slug(frame: bytes) -> str:
    """The market slug of a ``marketData`` frame ("" for anything else); never raises."""
    try:
        f = _PEEK.decode(frame)
    except (msgspec.MsgspecError, TypeError, ValueError):
        return ""
    return f.marketData.marketSlug if f.marketData is not None else ""


def _missing_key(name: str) -> str:
    return (f"polymarket-us feed {name!r}: {KEY_ID} / {SECRET_KEY}: missing: the markets WebSocket needs a "
            f"Polymarket US API key: put {KEY_ID} and {SECRET_KEY} in the secrets file named by [secrets] file "
            f"(or set POLYBOT_PMUS_KEY_ID / POLYBOT_PMUS_SECRET_KEY), or set params.poll_s > 0 to poll the "
            f"books over REST instead")  # fmt: skip


@attrs.define(eq=False)
class _Conn:
    """One WebSocket connection attempt."""

    number: int
    opened: bool = False
    ws: Any = None
    scope: anyio.CancelScope | None = None
    last_frame: float = 0.0
    frames: int = 0
    pending: dict[str, None] = attrs.Factory(dict)  # slugs without a book since subscribing
    deadline: float = 0.0
    kind: str = ""  # why it ended: closed | error | stale | connect_failed | auth
    detail: str = ""
    status: int = 0

    def fail(self, kind: str, detail: str) -> None:
        if not self.kind:
            self.kind, self.detail = kind, detail
        if self.scope is not None:
            self.scope.cancel()


class UsMarketFeed(Feed):
    kind = "polymarket-us"

    class Params(StrategyParams):
        #: the authenticated API (the WebSocket's host; ``ws_url`` "" = its wss:// form)
        api_url: str = API_URL
        #: the public API: catalog, books, settlements
        gateway_url: str = GATEWAY_URL
        ws_url: str = WS_URL
        #: market slugs to follow
        markets: list[str] = []
        #: event slugs: all their markets are followed
        events: list[str] = []
        #: MARKET_DATA_LITE (best prices only) instead of MARKET_DATA (full books); TRADE either way
        lite: bool = False
        #: no frame (heartbeats included) for this long -> FeedStale and a new connection; 0 = off
        stale_s: NonNegFloat = 30.0
        backoff_initial_s: PosFloat = 1.0
        backoff_max_s: PosFloat = 60.0
        #: fetch a book the kernel found unhealthy again over REST
        resync_on_unhealthy: bool = True
        resync_min_interval_s: NonNegFloat = 2.0
        #: a market without a book frame this long after subscribing is fetched over REST
        snapshot_timeout_s: PosFloat = 5.0
        #: REST book polling (s) when there is no API key; 0 = off (then a key is required)
        poll_s: NonNegFloat = 0.0
        #: a closed market's settlement is asked for again this often until it is there
        settlement_poll_s: PosFloat = 60.0
        #: consecutive refusals of the API key by the WebSocket before the feed stops
        max_auth_failures: Annotated[int, msgspec.Meta(ge=1)] = 3
        #: the local simulator's published demo key (adapters/polymarket_us/sim.py): only for
        #: loopback URLs (the offline demo); never a real credential
        demo_key: bool = False

    #: BookHealth reasons a reconnect repairs by itself (no REST fetch for those)
    RECONNECT_REASONS: tuple[str, ...] = ("disconnect", "reconnect")

    def __init__(self, name: str = "polymarket-us", params: Any = None) -> None:
        params = typed_params(self.Params, f"polymarket-us feed {name!r}", params)
        _validate(name, params)
        super().__init__(name, params)
        self.stats: dict[str, Any] = {
            "frames": 0, "bytes": 0, "connects": 0, "disconnects": 0, "reconnects": Counter(), "stale": 0,
            "rest_requests": 0, "rest_errors": 0, "books_fetched": 0, "resync_requests": 0, "resyncs": 0,
            "polls": 0, "settlement_requests": 0, "auth_errors": 0, "subscribes": 0, "rest_superseded": 0,
        }  # fmt: skip
        self.last_error = ""
        self._fetching: dict[str, bool] = {}  # REST books in flight: slug -> overtaken by the stream
        self._key_id = ""
        self._secret = ""
        self._rng = random.Random()
        self._slugs: dict[str, None] = {}  # the markets followed, in order
        self._infos: dict[str, MarketInfo] = {}  # slug -> its catalog entry
        self._resolved: set[str] = set()
        self._tg: TaskGroup | None = None
        self._send: ObjectSendStream[InboundRecord] | None = None
        self._clock: Clock | None = None
        self._session: aiohttp.ClientSession | None = None
        self._kernel: Any = None
        self._conn: _Conn | None = None
        self._book_queue: dict[str, None] = {}
        self._settle_queue: dict[str, float] = {}  # slug -> when to ask (anyio time)
        self._last_book: dict[str, float] = {}
        self._wake: anyio.Event | None = None

    def __repr__(self) -> str:  # never the secret
        key = describe_key(self._key_id) if self._key_id else "none"
        return f"UsMarketFeed({self.name!r}, markets={len(self._slugs)}, key={key})"

    # ------------------------------------------------------------------------------ credentials

    def configure(self, cfg: Any, env: Mapping[str, str] | None = None) -> None:
        """Read the API key from the daemon's config (``pmus_key_id`` / ``pmus_secret_key`` in
        the secrets file, or ``POLYBOT_PMUS_KEY_ID`` / ``POLYBOT_PMUS_SECRET_KEY``). Raises
        ``ValueError`` naming the secret when it is missing (unless ``poll_s`` > 0) or unusable."""
        from polybot.config import load_secrets

        if self.params.demo_key:
            from .sim import DEMO_KEY_ID, DEMO_SECRET_KEY

            self.set_credentials(DEMO_KEY_ID, DEMO_SECRET_KEY)
            return
        secrets = load_secrets(cfg, dict(os.environ) if env is None else dict(env))
        key_id, secret = secrets.get(KEY_ID) or "", secrets.get(SECRET_KEY) or ""
        if key_id or secret:
            self.set_credentials(key_id, secret)
        elif self.params.poll_s <= 0:
            raise UsFeedConfigError(_missing_key(self.name))

    def set_credentials(self, key_id: str, secret_key: str) -> None:
        """Use this API key (validated; the error names the secret, never its value)."""
        if not key_id:
            raise UsFeedConfigError(f"polymarket-us feed {self.name!r}: {KEY_ID}: missing (while {SECRET_KEY} is set)")
        if not secret_key:
            raise UsFeedConfigError(f"polymarket-us feed {self.name!r}: {SECRET_KEY}: missing (while {KEY_ID} is set)")
        try:
            check_secret(secret_key)
        except AuthError as exc:
            raise UsFeedConfigError(f"polymarket-us feed {self.name!r}: {SECRET_KEY}: {exc}") from None
        self._key_id, self._secret = key_id, secret_key

    @property
    def has_key(self) -> bool:
        return bool(self._key_id and self._secret)

    # ------------------------------------------------------------------------------ public API

    @property
    def markets(self) -> list[str]:
        """The slugs of the markets followed."""
        return list(self._slugs)

    @property
    def assets(self) -> list[str]:
        return [a for s in self._slugs for a in asset_ids(s)]

    def attach(self, kernel: Any) -> None:
        """Resync books the kernel finds unhealthy; ask for the settlement of closed markets."""
        self._kernel = kernel
        kernel.bus.subscribe(BookHealth, self._on_book_health)
        kernel.bus.subscribe(MarketStatus, self._on_status)
        kernel.bus.subscribe(MarketResolved, self._on_resolved)

    def request_snapshots(self, assets: Iterable[str] | None = None) -> int:
        """Queue REST books of ``assets`` (default: every market), e.g. when a recorder starts a
        new file. Returns how many markets were queued."""
        if not self._books_kept():
            return 0  # lite: no book would be kept current after it (a stale one would look healthy)
        slugs = list(self._slugs) if assets is None else [s for a in assets if (s := self._slug_of(a))]
        n = 0
        for s in slugs:
            if s in self._slugs and s not in self._book_queue:
                self._book_queue[s] = None
                n += 1
        if n:
            self._poke()
        return n

    def _books_kept(self) -> bool:
        """Whether the books are kept current: full books over the WebSocket, or REST polling.
        ``lite`` over the WebSocket streams best prices only, so no REST book is fetched: it
        would stay in the kernel, healthy, while the market moves (strategies read
        ``BestBidAsk`` then; the data_health validator refuses orders without a book)."""
        return not (self.params.lite and self.has_key)

    # ------------------------------------------------------------------------------ run

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        p = self.params
        if not self.has_key:
            key_id = os.environ.get("POLYBOT_PMUS_KEY_ID", "")
            secret = os.environ.get("POLYBOT_PMUS_SECRET_KEY", "")
            if key_id or secret:
                self.set_credentials(key_id, secret)
            elif p.poll_s <= 0:
                raise UsFeedConfigError(_missing_key(self.name))
        self._send, self._clock = send, clock
        timeout = aiohttp.ClientTimeout(total=None, connect=REST_TIMEOUT_S, sock_connect=REST_TIMEOUT_S)
        session = aiohttp.ClientSession(timeout=timeout)
        self._session = session
        mode = f"WebSocket {self._ws_base()} (key {describe_key(self._key_id)})" if self.has_key else \
            f"REST polling every {p.poll_s:g} s (no API key)"  # fmt: skip
        logger.info("polymarket-us feed {}: {} market(s), {} event(s); {}", self.name, len(p.markets), len(p.events), mode)
        try:
            async with send:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    await self._load_catalog()
                    for slug in self._slugs if self._books_kept() else ():
                        await self._fetch_book(slug)
                    tg.start_soon(self._rest_loop, name=f"{self.name}-rest")
                    if self.has_key:
                        tg.start_soon(self._ws_loop, name=f"{self.name}-ws")
                    else:
                        tg.start_soon(self._poll_loop, name=f"{self.name}-poll")
                    await anyio.sleep_forever()
        except BaseException as exc:
            if not _door_closed(exc):
                inner = _only(exc)
                if isinstance(inner, (UsFeedAuthError, UsFeedConfigError)):
                    raise inner from None  # the clear message, not a task group around it
                raise
            logger.info("polymarket-us feed {}: the kernel's input stream is closed; stopping", self.name)
        finally:
            self._tg = None
            self._session = None
            with anyio.CancelScope(shield=True):
                await session.close()
            s = self.stats
            logger.info("polymarket-us feed {}: stopped: {} frames, {} connects, reconnects {}, {} stale, "
                        "{} REST requests ({} errors), {} books fetched, {} resyncs, {} polls",
                        self.name, s["frames"], s["connects"], dict(s["reconnects"]), s["stale"], s["rest_requests"],
                        s["rest_errors"], s["books_fetched"], s["resyncs"], s["polls"])  # fmt: skip

    # ------------------------------------------------------------------------------ REST

    async def _get(self, path: str, query: list[tuple[str, str]] | None = None) -> tuple[int, bytes]:
        """``GET {gateway_url}{path}``: (status, body). 429, 5xx and transport errors are retried
        with backoff; after the last attempt a transport error raises ``OSError``-like errors."""
        p = self.params
        assert self._session is not None
        url = p.gateway_url.rstrip("/") + path
        timeout = aiohttp.ClientTimeout(total=REST_TIMEOUT_S)
        backoff = p.backoff_initial_s
        for attempt in range(1, REST_ATTEMPTS + 1):
            self.stats["rest_requests"] += 1
            try:
                async with self._session.get(url, params=query, timeout=timeout) as resp:
                    body = await resp.read()
                    status = resp.status
                if status != 429 and status < 500:
                    return status, body
                why = f"HTTP {status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if attempt == REST_ATTEMPTS:
                    self.stats["rest_errors"] += 1
                    raise
                why, status, body = _describe(exc), 0, b""
            if attempt == REST_ATTEMPTS:
                break
            delay = min(p.backoff_max_s, backoff / 2 + self._rng.uniform(0, backoff / 2))
            backoff = min(backoff * 2, p.backoff_max_s)
            logger.info("polymarket-us feed {}: GET {} failed ({}); retrying in {:.2f}s", self.name, path, why, delay)
            await anyio.sleep(delay)
        self.stats["rest_errors"] += 1
        return status, body

    async def _journal(self, path: str, status: int, body: bytes,
                       query: list[tuple[str, str]] | None = None) -> list[Event]:  # fmt: skip
        """Send one answer through the door (first), then read it the way the kernel will."""
        assert self._send is not None and self._clock is not None
        msg = rest_input(path, status, body, dict(query) if query else None)
        await self._send.send(InboundRecord(self._clock.now(), REST_SOURCE, msg))
        try:
            return decode_rest(msg, 0)
        except FrameError as exc:
            return list(exc.events)
        except (ValueError, msgspec.MsgspecError):
            return []

    async def _load_catalog(self) -> None:
        """Resolve ``markets`` and ``events`` into markets (answers journaled). Retries with
        backoff until every slug is either found or known to be unknown to the venue."""
        p = self.params
        todo: list[tuple[str, str]] = [("market", s) for s in p.markets] + [("event", s) for s in p.events]
        delay = p.backoff_initial_s
        missing: list[str] = []
        while todo:
            kind, slug = todo[0]
            path = f"/v1/market/slug/{slug}" if kind == "market" else f"/v1/events/slug/{slug}"
            try:
                status, body = await self._get(path)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                status, body = 0, _describe(exc).encode()
            if status == 404:
                missing.append(f"{kind} {slug}")
                todo.pop(0)
                continue
            if not 200 <= status < 300:
                logger.warning("polymarket-us feed {}: catalog GET {} failed ({}); retry in {:.1f} s", self.name, path,
                               f"HTTP {status}: {body[:120]!r}" if status else body.decode(), delay)  # fmt: skip
                await anyio.sleep(delay)
                delay = min(delay * 2, p.backoff_max_s)
                continue
            delay = p.backoff_initial_s
            todo.pop(0)
            events = await self._journal(path, status, body)
            infos = [e for e in events if isinstance(e, MarketInfo)]
            if not infos:
                missing.append(f"{kind} {slug} (no market in the answer)")
            for info in infos:
                self._add_market(info)
            for e in events:
                if isinstance(e, MarketResolved):
                    self._resolved.add(slug_of_market(e.market) or "")
        if missing:
            logger.warning("polymarket-us feed {}: not found at {}: {}", self.name, p.gateway_url, ", ".join(missing))
        logger.info("polymarket-us feed {}: following {} market(s)", self.name, len(self._slugs))

    def _add_market(self, info: MarketInfo) -> None:
        slug = info.slug
        if not slug:
            return
        self._slugs[slug] = None
        self._infos[slug] = info
        if info.closed and slug not in self._resolved:
            self._settle_queue.setdefault(slug, 0.0)

    async def _fetch_book(self, slug: str) -> bool:
        """One REST book, journaled. False (logged) when it could not be had."""
        path = f"/v1/markets/{slug}/book"
        self._last_book[slug] = anyio.current_time()
        self._fetching[slug] = False  # True once a stream book of this market overtakes the fetch
        try:
            status, body = await self._get(path)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning("polymarket-us feed {}: GET {} failed: {}", self.name, path, _describe(exc))
            return False
        finally:
            superseded = self._fetching.pop(slug, False)
        if superseded and 200 <= status < 300:
            # the stream sent a whole book of this market while the answer was on its way: the
            # answer may be older than that book, and must not replace it (never sent, never used)
            self.stats["rest_superseded"] += 1
            logger.debug("polymarket-us feed {}: GET {}: a stream book came first; answer dropped", self.name, path)
            return True
        if not 200 <= status < 300:
            self.stats["rest_errors"] += 1
            logger.warning("polymarket-us feed {}: GET {}: HTTP {}: {!r}", self.name, path, status, body[:160])
            return False
        await self._journal(path, status, body)
        self.stats["books_fetched"] += 1
        conn = self._conn
        if conn is not None and slug in conn.pending:
            del conn.pending[slug]
            await self._pending_done(conn)
        return True

    async def _fetch_settlement(self, slug: str) -> bool:
        """The settlement of a closed market, journaled; True once it is known."""
        path = f"/v1/markets/{slug}/settlement"
        self.stats["settlement_requests"] += 1
        try:
            status, body = await self._get(path)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning("polymarket-us feed {}: GET {} failed: {}", self.name, path, _describe(exc))
            return False
        if status != 404 and not 200 <= status < 300:
            logger.warning("polymarket-us feed {}: GET {}: HTTP {}: {!r}", self.name, path, status, body[:160])
            return False
        events = await self._journal(path, status, body)
        if any(isinstance(e, MarketResolved) for e in events):
            self._resolved.add(slug)
            logger.info("polymarket-us feed {}: {} settled", self.name, slug)
            return True
        return False

    async def _rest_loop(self) -> None:
        """Books queued for a REST fetch (rate-limited per market) and settlements to ask for."""
        p = self.params
        while True:
            now = anyio.current_time()
            next_due = math.inf
            for slug in list(self._book_queue):
                due = self._last_book.get(slug, -math.inf) + p.resync_min_interval_s
                if due > now:
                    next_due = min(next_due, due)
                    continue
                del self._book_queue[slug]
                if await self._fetch_book(slug):
                    self.stats["resyncs"] += 1
                    await self._event(FeedResynced(feed=self.name, asset_id=asset_ids(slug)[0], detail="REST book"))
                    logger.info("polymarket-us feed {}: resynced {} over REST", self.name, slug)
                else:
                    self._book_queue.setdefault(slug, None)  # again after the rate limit
            for slug, due in list(self._settle_queue.items()):
                if slug in self._resolved:
                    self._settle_queue.pop(slug, None)
                    continue
                if due > now:
                    next_due = min(next_due, due)
                    continue
                if await self._fetch_settlement(slug):
                    self._settle_queue.pop(slug, None)
                else:
                    self._settle_queue[slug] = anyio.current_time() + p.settlement_poll_s
                    next_due = min(next_due, self._settle_queue[slug])
            self._wake = wake = anyio.Event()
            if self._book_queue and next_due == math.inf:
                next_due = anyio.current_time()
            with anyio.move_on_after(max(0.0, next_due - anyio.current_time()) if next_due < math.inf else math.inf):
                await wake.wait()
            self._wake = None

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------------------ REST polling

    async def _poll_loop(self) -> None:
        """No API key: every market's book over REST every ``poll_s``."""
        p = self.params
        ok_since = anyio.current_time()
        down: set[str] = set()
        stale_reported = False
        await self._event(FeedConnected(feed=self.name, detail=f"REST polling every {p.poll_s:g} s (no API key)"))
        while True:
            await anyio.sleep(p.poll_s)
            self.stats["polls"] += 1
            failed = [slug for slug in list(self._slugs) if not await self._fetch_book(slug)]
            now = anyio.current_time()
            new_down = [s for s in failed if s not in down]
            if new_down:
                aids = tuple(a for s in new_down for a in asset_ids(s))
                await self._event(FeedDisconnected(feed=self.name, detail=f"REST poll failed for {len(new_down)} "
                                                   f"market(s)", asset_ids=aids))  # fmt: skip
            back = [s for s in down if s not in failed]
            if back:
                await self._event(FeedConnected(feed=self.name, detail=f"REST poll recovered {len(back)} market(s)"))
            down = set(failed)
            if not failed:
                ok_since, stale_reported = now, False
            elif p.stale_s > 0 and now - ok_since >= p.stale_s and not stale_reported:
                stale_reported = True
                await self._stale(now - ok_since, f"no successful REST poll for {now - ok_since:.0f} s")

    # ------------------------------------------------------------------------------ WebSocket

    def _ws_base(self) -> str:
        p = self.params
        if p.ws_url:
            return p.ws_url.rstrip("/")
        return p.api_url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)

    async def _ws_loop(self) -> None:
        p = self.params
        backoff = p.backoff_initial_s
        auth_failures = 0
        number = 0
        while True:
            number += 1
            try:
                conn = await self._connection(number)
            except Exception as exc:  # noqa: BLE001 - a bug here must not end the feed
                if _door_closed(exc):
                    raise
                logger.opt(exception=exc).error("polymarket-us feed {}: connection failed; restarting it", self.name)
                conn = _Conn(number, kind="internal_error", detail=_describe(exc))
            self.stats["reconnects"][conn.kind] += 1
            if conn.kind == "auth":
                auth_failures += 1
                self.stats["auth_errors"] += 1
                self.last_error = (f"polymarket-us feed {self.name!r}: the markets WebSocket refused the API key "
                                   f"{describe_key(self._key_id)} ({conn.detail}): check the secrets {KEY_ID} and "
                                   f"{SECRET_KEY} (and this machine's clock)")  # fmt: skip
                logger.error("{} [{} of {}]", self.last_error, auth_failures, p.max_auth_failures)
                if auth_failures >= p.max_auth_failures:
                    raise UsFeedAuthError(self.last_error)
            else:
                auth_failures = 0
            if conn.opened and conn.frames > 0 and not conn.pending:
                backoff = p.backoff_initial_s  # it was healthy: start the backoff over
            delay = backoff / 2 + self._rng.uniform(0, backoff / 2)
            backoff = min(backoff * 2, p.backoff_max_s)
            if conn.opened:
                self.stats["disconnects"] += 1
                await self._event(FeedDisconnected(feed=self.name, detail=f"{conn.kind}: {conn.detail}",
                                                   asset_ids=tuple(self.assets)))  # fmt: skip
            if conn.kind != "auth":
                self.last_error = f"{conn.kind}: {conn.detail}"
                logger.warning("polymarket-us feed {}: {}: {}; reconnecting in {:.2f}s", self.name, conn.kind,
                               conn.detail, delay)  # fmt: skip
            await anyio.sleep(delay)

    async def _connection(self, number: int) -> _Conn:
        """One connection: connect (signed), subscribe, forward until it fails; returns why it ended."""
        p = self.params
        assert self._send is not None and self._clock is not None and self._session is not None
        conn = _Conn(number)
        headers = sign_headers(self._key_id, self._secret, "GET", WS_PATH)
        kw: dict[str, Any] = {"autoping": True, "max_msg_size": MAX_FRAME_BYTES, "headers": headers}
        if _WS_DECODE_TEXT:
            kw["decode_text"] = False
        try:
            with anyio.fail_after(REST_TIMEOUT_S):
                ws = await self._session.ws_connect(self._ws_base() + WS_PATH, **kw)
        except aiohttp.WSServerHandshakeError as exc:
            kind = "auth" if exc.status in (401, 403) else "connect_failed"
            conn.kind, conn.status, conn.detail = kind, exc.status, f"HTTP {exc.status}: {exc.message}"
            return conn
        except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
            if _door_closed(exc):
                raise
            conn.kind, conn.detail = "connect_failed", _describe(exc)
            return conn
        self._conn = conn
        try:
            async with anyio.create_task_group() as tg:
                conn.scope = tg.cancel_scope
                conn.ws, conn.opened = ws, True
                now = anyio.current_time()
                conn.last_frame = now
                slugs = list(self._slugs)
                md = "SUBSCRIPTION_TYPE_MARKET_DATA_LITE" if p.lite else "SUBSCRIPTION_TYPE_MARKET_DATA"
                for tag, sub in (("md", md), ("trade", "SUBSCRIPTION_TYPE_TRADE")):
                    msg = {"subscribe": {"requestId": f"{self.name}-{tag}-{number}", "subscriptionType": sub,
                                         "marketSlugs": slugs}}  # fmt: skip
                    await ws.send_str(msgspec.json.encode(msg).decode())
                self.stats["subscribes"] += 1
                if not p.lite:
                    conn.pending = dict.fromkeys(slugs)
                    conn.deadline = now + p.snapshot_timeout_s
                self.stats["connects"] += 1
                detail = f"{len(slugs)} market(s), {'lite' if p.lite else 'full books'} + trades"
                await self._event(FeedConnected(feed=self.name, detail=detail))
                logger.info("polymarket-us feed {}: connected ({})", self.name, detail)
                tg.start_soon(self._watchdog, conn)
                await self._reader(conn)
        except Exception as exc:  # noqa: BLE001 - one connection's failure never kills the feed
            if _door_closed(exc):
                raise
            if not conn.kind:
                conn.kind, conn.detail = "error", _describe(exc)
        finally:
            if self._conn is conn:
                self._conn = None
            with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                await ws.close()
        return conn

    async def _reader(self, conn: _Conn) -> None:
        assert self._send is not None and self._clock is not None
        send, clock, stats = self._send, self._clock, self.stats
        ws = conn.ws
        text_t, binary_t = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        while True:
            msg = await ws.receive()
            t = msg.type
            if t is text_t or t is binary_t:
                ts = clock.now()
                data = msg.data
                if data.__class__ is str:
                    data = data.encode()
                elif data.__class__ is not bytes:
                    data = bytes(data)
                conn.last_frame = anyio.current_time()
                conn.frames += 1
                stats["frames"] += 1
                stats["bytes"] += len(data)
                await send.send(InboundRecord(ts, MARKET_SOURCE, data))
                if self._fetching and b'"marketData"' in data:
                    slug = _book_slug(data)
                    if slug in self._fetching:
                        self._fetching[slug] = True
                if conn.pending and b'"marketData"' in data:
                    slug = _book_slug(data)
                    if slug and conn.pending.pop(slug, 0) is None:
                        await self._pending_done(conn)
            elif t in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                code = ws.close_code if ws.close_code is not None else msg.data
                conn.fail("closed", f"closed by the server (code {code})")
                return
            elif t is aiohttp.WSMsgType.ERROR:
                conn.fail("error", _describe(msg.data) if isinstance(msg.data, BaseException) else str(msg.data))
                return

    async def _pending_done(self, conn: _Conn) -> None:
        """Every market has had its book since this connection subscribed."""
        if conn.pending:
            return
        if conn.number > 1 or self.stats["connects"] > 1:
            await self._event(FeedResynced(feed=self.name, detail=f"{len(self._slugs)} book(s) after reconnect"))
        logger.info("polymarket-us feed {}: every book received on connection {}", self.name, conn.number)

    async def _watchdog(self, conn: _Conn) -> None:
        """Staleness (no frame for ``stale_s``) and markets whose book did not come."""
        p = self.params
        while True:
            now = anyio.current_time()
            wake = now + 1.0
            if p.stale_s > 0:
                age = now - conn.last_frame
                if age >= p.stale_s:
                    self.stats["stale"] += 1
                    await self._stale(age, f"no frame for {age:.1f} s")
                    conn.fail("stale", f"no frame for {age:.1f} s")
                    return
                wake = min(wake, conn.last_frame + p.stale_s)
            if conn.pending:
                if now >= conn.deadline:
                    late = list(conn.pending)
                    logger.info("polymarket-us feed {}: {} market(s) without a book {} s after subscribing (first "
                                "{}): fetching them over REST", self.name, len(late), p.snapshot_timeout_s, late[0])  # fmt: skip
                    for slug in late:
                        self._book_queue.setdefault(slug, None)
                        self._last_book.pop(slug, None)  # not rate-limited: it is not a resync
                    self._poke()
                    conn.deadline = math.inf
                else:
                    wake = min(wake, conn.deadline)
            await anyio.sleep(max(0.0, wake - now))

    async def _stale(self, age_s: float, detail: str) -> None:
        age_ns = int(age_s * NS)
        for a in self.assets:
            await self._event(FeedStale(feed=self.name, asset_id=a, age_ns=age_ns, detail=detail))
        logger.warning("polymarket-us feed {}: stale: {}", self.name, detail)

    async def _event(self, ev: Event) -> None:
        assert self._send is not None and self._clock is not None
        ts = self._clock.now()
        await self._send.send(InboundRecord(ts, "events", msgspec.structs.replace(ev, ts=ts)))

    # ------------------------------------------------------------------------------ kernel events

    def _slug_of(self, asset_or_market: str) -> str | None:
        pa = parse_asset(asset_or_market)
        if pa is not None:
            return pa[0]
        return slug_of_market(asset_or_market)

    def _on_book_health(self, ev: BookHealth) -> None:
        if ev.healthy or not self.params.resync_on_unhealthy:
            return
        slug = self._slug_of(ev.asset_id)
        if slug is None or slug not in self._slugs or slug in self._resolved:
            return
        reason = ev.reason.lower()
        if any(r in reason for r in self.RECONNECT_REASONS):
            return  # the new connection's first frames repair it (or the snapshot timeout does)
        if slug not in self._book_queue:
            self.stats["resync_requests"] += 1
            self._book_queue[slug] = None
            self._poke()

    def _on_status(self, ev: MarketStatus) -> None:
        slug = self._slug_of(ev.market)
        if slug is None or slug not in self._slugs or slug in self._resolved:
            return
        if (ev.closed or ev.state in CLOSED_STATES) and slug not in self._settle_queue:
            self._settle_queue[slug] = 0.0
            self._poke()

    def _on_resolved(self, ev: MarketResolved) -> None:
        slug = self._slug_of(ev.market)
        if slug is not None and slug in self._slugs:
            self._resolved.add(slug)
            self._settle_queue.pop(slug, None)


def _only(exc: BaseException) -> BaseException:
    """The one exception inside (nested) one-exception groups, else ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _validate(name: str, p: Any) -> None:
    """Bounds the type system does not enforce on a directly built Params; errors name the field."""
    where = f"polymarket-us feed {name!r}: params"

    def bad(field: str, what: str) -> ValueError:
        return ValueError(f"{where}.{field} {what}, got {getattr(p, field)!r}")

    for f in ("backoff_initial_s", "backoff_max_s", "snapshot_timeout_s", "settlement_poll_s"):
        v = getattr(p, f)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
            raise bad(f, "must be a positive number of seconds")
    for f in ("stale_s", "resync_min_interval_s", "poll_s"):
        v = getattr(p, f)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or not math.isfinite(v):
            raise bad(f, "must be a number of seconds >= 0")
    if p.backoff_max_s < p.backoff_initial_s:
        raise bad("backoff_max_s", f"must be >= backoff_initial_s ({p.backoff_initial_s})")
    if isinstance(p.max_auth_failures, bool) or not isinstance(p.max_auth_failures, int) or p.max_auth_failures < 1:
        raise bad("max_auth_failures", "must be an integer >= 1")
    for f in ("api_url", "gateway_url"):
        if not getattr(p, f).startswith(("http://", "https://")):
            raise bad(f, "must be an http:// or https:// URL")
    if p.ws_url and not p.ws_url.startswith(("ws://", "wss://")):
        raise bad("ws_url", "must be a ws:// or wss:// URL")
    if p.demo_key:
        from .sim import loopback_only

        for f in ("api_url", "gateway_url", "ws_url"):
            if getattr(p, f) and not loopback_only(getattr(p, f)):
                raise bad(f, "must be a loopback URL with demo_key = true (the simulator's key opens nothing else)")
    for f in ("markets", "events"):
        for i, s in enumerate(getattr(p, f)):
            if not isinstance(s, str) or not s.strip() or "/" in s or "?" in s:
                raise ValueError(f"{where}.{f}[{i}] must be a slug, got {s!r}")
    if not p.markets and not p.events:
        raise ValueError(f"{where}.markets / {where}.events: name at least one market or event slug")
