"""The Polymarket market-channel WebSocket feed.

Every frame received on the market socket (JSON object, JSON array, the text ``PONG``, garbage,
binary) is forwarded untouched, as its bytes, through the kernel's one door, stamped with the
live clock. The feed itself decodes only what liveness needs: which assets got their ``book``
dump.

* **Sharding.** The assets are split into shards of ``shard_size`` (Polymarket silently stops
  sending snapshots beyond ~500 assets per connection); each shard has its own connection.
* **Liveness.** A text ``PING`` goes out every ``ping_interval_s``; a PING left without a
  ``PONG`` for ``pong_timeout_s`` means the connection is dead. An asset subscribed on a
  connection that has not had its ``book`` within ``dump_timeout_s`` means the subscription
  silently failed. Either way the connection is replaced. A quiet book is *not* a sign of
  anything: quiet markets are normal.
* **Loss.** A lost connection is reported as ``FeedDisconnected`` (with the shard's assets, whose
  books the kernel then marks unhealthy) and replaced after an exponential backoff with jitter
  (reset after a healthy connection: all dumps received and a PONG seen). The resubscription's
  dump restores the books.
* **Dynamic subscription.** :meth:`MarketFeed.subscribe` / :meth:`MarketFeed.unsubscribe` add
  assets to a shard with room (or open a new connection) and send the ``operation`` messages on
  the open socket.
* **Resync.** Attached to a kernel, the feed listens to ``BookHealth``: an asset of ours reported
  unhealthy for a reason other than a reconnect (those are restored by the dump) is fetched from
  REST ``POST /books`` (batched, rate-limited per asset, retried with backoff) and the raw
  response body is sent as source ``polymarket.book``.
* **Rolling series.** ``series`` names recurring up/down series (``btc-updown-5m``: a market per
  window) or Gamma series slugs (a sports league: its open events). Every ``roll_interval_s`` the
  roll task computes, from the feed's clock, the current window and the ``roll_ahead`` next ones,
  fetches those it does not know yet from Gamma by slug (a Gamma series: its open events again,
  keeping the markets not seen yet), sends each response through the door as a
  ``polymarket.gamma`` input *before* subscribing the new tokens (the kernel knows a market when
  its book arrives), and subscribes them. A window Gamma does not list yet is asked again next
  round. A window's tokens are unsubscribed ``unsubscribe_after_s`` after its ``MarketResolved``
  (seen on the kernel's bus); a window whose resolution does not come is let go
  ``unresolved_grace_s`` after its end (its ``market_resolved`` arrives on its tokens' channel:
  letting go earlier would leave its shares unsettled). After a restart, the kernel's ended but
  unresolved windows of the series are followed again. Gamma failures are counted and retried
  with backoff.

    [[feeds]]
    kind = "polymarket"
    params = { assets = ["7153...", "1029..."], shard_size = 200 }

    [[feeds]]
    kind = "polymarket"
    params = { series = ["btc-updown-5m"], roll_interval_s = 30, roll_ahead = 2, unsubscribe_after_s = 120 }
"""

from __future__ import annotations

import inspect
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import aiohttp
import anyio
import anyio.lowlevel
import attrs
import msgspec
from anyio.abc import ObjectSendStream, TaskGroup
from loguru import logger

from polybot.clock import Clock
from polybot.events import BookHealth, FeedConnected, FeedDisconnected, MarketInfo, MarketResolved
from polybot.feeds import Feed, typed_params, door_closed as _door_closed, describe as _describe
from polybot.kernel import InboundRecord
from polybot.strategy import StrategyParams

from .gamma import DURATIONS, GammaClient, GammaResponse, is_tradable, window_slug, window_start

__all__ = ["BooksFetchError", "MarketFeed", "book_asset_ids"]

#: Most assets Polymarket serves on one market connection (beyond it: no snapshots).
MAX_SHARD_SIZE = 500
#: Largest frame accepted (an initial dump of a few hundred deep books is a few MB).
MAX_FRAME_BYTES = 64 * 1024 * 1024
#: REST request timeout and attempts (the first included) for POST /books.
REST_TIMEOUT_S = 10.0
REST_ATTEMPTS = 5
#: Bound of a graceful websocket close; after it the transport is simply dropped.
CLOSE_TIMEOUT_S = 1.0
#: Most ``/events/keyset`` pages one roll reads per Gamma series.
ROLL_MAX_PAGES = 20
#: Markets whose window is over, remembered so that a listing that still shows them open never
#: subscribes them again (oldest forgotten first beyond this).
ROLL_DONE_MAX = 100_000
NS = 1_000_000_000

_WS_DECODE_TEXT = "decode_text" in inspect.signature(aiohttp.ClientSession.ws_connect).parameters
_PONG = b"PONG"

PosFloat = Annotated[float, msgspec.Meta(gt=0)]


# ---------------------------------------------------------------------------------- frame peek


class _BookRef(msgspec.Struct):
    event_type: str = ""
    asset_id: str = ""


_ONE_REF = msgspec.json.Decoder(_BookRef)
_REF_LIST = msgspec.json.Decoder(list[_BookRef])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


def book_asset_ids(frame: bytes) -> list[str]:
    """Asset ids of the ``book`` events in a frame (an object or an array of them); ``[]`` for
    anything else. Cheap (only ``event_type``/``asset_id`` are decoded) and never raises."""
    try:
        if frame[:1] == b"[":
            try:
                refs = _REF_LIST.decode(frame)
            except msgspec.ValidationError:  # one odd element must not hide the others
                refs = []
                for raw in _RAW_LIST.decode(frame):
                    try:
                        refs.append(_ONE_REF.decode(raw))
                    except msgspec.DecodeError:
                        pass
        elif b'"book"' in frame:
            refs = [_ONE_REF.decode(frame)]
        else:
            return []
    except (msgspec.DecodeError, TypeError, ValueError):
        return []
    return [r.asset_id for r in refs if r.event_type == "book" and r.asset_id]


# ---------------------------------------------------------------------------------- state


class BooksFetchError(Exception):
    """POST /books failed: ``status`` is the HTTP status (0: transport error); ``retryable``
    tells whether trying again later may help (429, 5xx, transport) or not (other 4xx)."""

    def __init__(self, message: str, status: int = 0, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@attrs.define(eq=False)
class _Conn:
    """One connection attempt of a shard."""

    shard: int
    opened_at: float = 0.0
    ws: Any = None
    out: Any = None  # MemoryObjectSendStream[str]: every outgoing text goes through it, in order
    scope: anyio.CancelScope | None = None
    pending: dict[str, float] = attrs.Factory(dict)  # asset -> dump deadline
    ping_since: float | None = None  # time of the oldest PING not yet answered
    pongs: int = 0
    dumps: int = 0
    kind: str = ""  # why it ended: closed | error | send_failed | pong_timeout | dump_timeout | idle
    detail: str = ""

    @property
    def open(self) -> bool:
        return self.out is not None and self.scope is not None and not self.scope.cancel_called

    def fail(self, kind: str, detail: str) -> None:
        if not self.kind:
            self.kind, self.detail = kind, detail
        if self.scope is not None:
            self.scope.cancel()

    def send_text(self, text: str) -> None:
        self.out.send_nowait(text)


@attrs.define(eq=False)
class _Rolled:
    """A market the roll follows (a window of an up/down series, a market of a Gamma series)."""

    market: str
    slug: str
    series: str
    assets: tuple[str, ...]
    end_ns: int  # window end (0: unknown; then only its resolution ends it)
    resolved_ns: int = 0  # when its MarketResolved was seen (feed clock)

    def due(self, grace_ns: int, unresolved_ns: int) -> int | None:
        """When its tokens are let go (None: not finished): ``grace_ns`` after its resolution;
        without one, ``unresolved_ns`` after its window's end (its ``market_resolved`` comes on
        the market channel of its tokens: letting go earlier would miss it, and the shares it
        settles would never be redeemed)."""
        if self.resolved_ns:
            return self.resolved_ns + grace_ns
        return self.end_ns + max(grace_ns, unresolved_ns) if self.end_ns else None


@attrs.define(eq=False)
class _Shard:
    index: int
    assets: dict[str, None] = attrs.Factory(dict)  # an ordered set
    conn: _Conn | None = None
    wake: anyio.Event | None = None
    started: bool = False


# ---------------------------------------------------------------------------------- the feed


class MarketFeed(Feed):
    kind = "polymarket"

    class Params(StrategyParams):
        ws_url: str = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
        rest_url: str = "https://clob.polymarket.com"
        gamma_url: str = "https://gamma-api.polymarket.com"
        assets: list[str] = []
        #: Markets to subscribe (both tokens), resolved through Gamma at start: slugs or
        #: condition ids (0x + 64 hex). The Gamma responses are inputs (journaled), so a replay
        #: knows the markets: tick size, min order size, neg-risk, fees.
        markets: list[str] = []
        #: Recurring up/down series ("btc-updown-5m": the current window and ``roll_ahead`` next
        #: ones, rolled forward as time passes) or Gamma series slugs (their open events).
        series: list[str] = []
        #: How often the roll looks ahead (s); 0 = off: the series are resolved once at start.
        roll_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0
        #: Future windows of each up/down series to know in advance (besides the current one).
        roll_ahead: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 2
        #: A rolled market's tokens are unsubscribed this long after its window ended or it resolved.
        unsubscribe_after_s: Annotated[float, msgspec.Meta(ge=0)] = 120.0
        #: a finished window whose resolution has not been seen stays subscribed this long after
        #: its end, waiting for its market_resolved (UMA resolutions can take hours)
        unresolved_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 86_400.0
        shard_size: Annotated[int, msgspec.Meta(ge=1, le=MAX_SHARD_SIZE)] = 200
        ping_interval_s: PosFloat = 10.0
        pong_timeout_s: PosFloat = 30.0
        dump_timeout_s: PosFloat = 15.0
        backoff_initial_s: PosFloat = 1.0
        backoff_max_s: PosFloat = 60.0
        custom_feature_enabled: bool = True
        resync_rest: bool = True
        resync_min_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 2.0
        rest_batch: Annotated[int, msgspec.Meta(ge=1)] = 50
        source: str = "polymarket.market"

    #: BookHealth reasons that a reconnect's dump repairs: no REST resync for those.
    RECONNECT_REASONS: tuple[str, ...] = ("disconnect", "reconnect")

    def __init__(self, name: str = "polymarket", params: Any = None) -> None:
        params = typed_params(self.Params, f"polymarket feed {name!r}", params)
        _validate(name, params)
        super().__init__(name, params)
        self.stats: dict[str, Any] = {
            "frames": 0, "binary_frames": 0, "bytes": 0, "connects": 0, "disconnects": 0,
            "reconnects": Counter(), "pings": 0, "pongs": 0, "dumps": 0, "subscribes": 0,
            "unsubscribes": 0, "resync_requests": 0, "resyncs": 0, "resync_posts": 0,
            "resync_errors": 0, "rolls": 0, "windows_added": 0, "windows_removed": 0, "roll_errors": 0,
            "windows_not_listed": 0,
        }  # fmt: skip
        self._rng = random.Random()
        self._shards: list[_Shard] = []
        self._where: dict[str, _Shard] = {}
        self._tg: TaskGroup | None = None
        self._send: ObjectSendStream[InboundRecord] | None = None
        self._clock: Clock | None = None
        self._session: aiohttp.ClientSession | None = None
        self._kernel: Any = None
        self._resync_queue: dict[str, None] = {}
        self._resync_wake: anyio.Event | None = None
        self._last_resync: dict[str, float] = {}
        self._resync_started = False
        # rolling series
        self._updown = [s for s in params.series if _is_updown(s)]
        self._gseries = [s for s in params.series if not _is_updown(s)]
        self._rolled: dict[str, _Rolled] = {}  # condition id -> a market the roll follows
        self._done: dict[str, None] = {}  # condition ids the roll is done with (bounded, ordered)
        self._window_slugs: dict[str, int] = {}  # up/down window slug resolved -> its start (unix s)
        self._not_listed: dict[str, int] = {}  # window slug -> rounds Gamma did not list it
        self._series_ids: dict[str, list[str]] = {}  # Gamma series slug -> its ids
        self._series_missing: dict[str, int] = {}  # Gamma series slug -> rounds /series did not know it
        self._no_dump: set[str] = set()  # assets of resolved markets: no book dump to expect
        self._pinned = set(params.assets)  # asked for by id or in ``markets``: never rolled away
        self._roll_wake: anyio.Event | None = None
        dupes = self._add(params.assets)[1]
        if dupes:
            logger.warning("polymarket feed {}: {} duplicate asset(s) in params.assets ignored", name, dupes)

    # ------------------------------------------------------------------------------ public API

    @property
    def assets(self) -> list[str]:
        """Every subscribed asset, shard by shard."""
        return [a for s in self._shards for a in s.assets]

    @property
    def shards(self) -> list[list[str]]:
        """The assets of each shard (one connection each)."""
        return [list(s.assets) for s in self._shards]

    @property
    def rolled(self) -> dict[str, dict[str, Any]]:
        """The markets the roll follows now: condition id -> slug, series, tokens, window end and
        resolution time (ns; 0 = not known / not yet)."""
        return {cid: {"slug": r.slug, "series": r.series, "assets": list(r.assets), "end_ts": r.end_ns,
                      "resolved_ts": r.resolved_ns} for cid, r in self._rolled.items()}  # fmt: skip

    def attach(self, kernel: Any) -> None:
        """Listen to the kernel's ``BookHealth`` events to resync unhealthy books over REST, and
        to ``MarketResolved`` to let go of the tokens of finished markets."""
        self._kernel = kernel
        kernel.bus.subscribe(BookHealth, self._on_book_health)
        kernel.bus.subscribe(MarketResolved, self._on_resolved)
        if self._tg is not None:
            self._start_resync()

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        p = self.params
        self._send, self._clock = send, clock
        timeout = aiohttp.ClientTimeout(total=None, connect=REST_TIMEOUT_S, sock_connect=REST_TIMEOUT_S)
        session = aiohttp.ClientSession(timeout=timeout)
        self._session = session
        logger.info("polymarket feed {}: {} asset(s) on {} connection(s) to {}",
                    self.name, len(self._where), len(self._shards), p.ws_url)  # fmt: skip
        try:
            async with send:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    rolling = bool(p.series) and p.roll_interval_s > 0
                    if p.markets or (p.series and not rolling):
                        await self._resolve(send, clock)
                    if rolling:
                        self._follow_unresolved()
                    first_ok = rolling and await self._roll_round_safe()  # joins the first connection
                    for shard in self._shards:
                        if not shard.started:
                            self._start_shard(shard)
                    self._start_resync()
                    if rolling:
                        tg.start_soon(self._roll_loop, first_ok, name=f"{self.name}-roll")
                    await anyio.sleep_forever()
        except BaseException as exc:
            if not _door_closed(exc):
                raise
            logger.info("polymarket feed {}: the kernel's input stream is closed; stopping", self.name)
        finally:
            self._tg = None
            self._session = None
            with anyio.CancelScope(shield=True):
                await session.close()
            s = self.stats
            logger.info("polymarket feed {}: stopped: {} frames, {} connects, reconnects {}, "
                        "{} pings / {} pongs, {} dumps, {} resyncs in {} POSTs ({} errors), {} rolls ({} errors): "
                        "{} markets added, {} removed",
                        self.name, s["frames"], s["connects"], dict(s["reconnects"]), s["pings"],
                        s["pongs"], s["dumps"], s["resyncs"], s["resync_posts"], s["resync_errors"], s["rolls"],
                        s["roll_errors"], s["windows_added"], s["windows_removed"])  # fmt: skip

    async def _resolve(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        """Resolve ``markets`` (and ``series`` when the roll is off) through Gamma, send the
        responses through the door, and subscribe every token. Retries with backoff until it
        succeeds (or is cancelled)."""
        from .gamma import resolve_markets

        p = self.params
        slugs = [m for m in p.markets if not _is_condition_id(m)]
        cids = [m for m in p.markets if _is_condition_id(m)]
        series = p.series if p.roll_interval_s <= 0 else []
        delay = p.backoff_initial_s
        while True:
            try:
                async with GammaClient(p.gamma_url, session=self._session) as client:
                    infos, messages = await resolve_markets(client, slugs=slugs, condition_ids=cids, series=series,
                                                            now_ns=clock.now(), windows=1 + p.roll_ahead,
                                                            ts=clock.now())  # fmt: skip
                break
            except Exception as exc:  # noqa: BLE001 - the feed must not die on a catalog hiccup
                logger.warning("polymarket feed {}: resolving markets via {} failed ({}); retry in {:.1f} s",
                               self.name, p.gamma_url, exc, delay)  # fmt: skip
                await anyio.sleep(delay)
                delay = min(delay * 2, p.backoff_max_s)
        for m in messages:
            await send.send(InboundRecord(clock.now(), "polymarket.gamma", m))
        found = {i.slug for i in infos} | {i.market for i in infos}
        missing = [m for m in p.markets if m not in found]
        if missing:
            logger.warning("polymarket feed {}: not found in the catalog: {}", self.name, ", ".join(missing))
        tokens = [a for i in infos for a in i.asset_ids]
        logger.info("polymarket feed {}: {} market(s) resolved, {} token(s)", self.name, len(infos), len(tokens))
        self._pinned.update(tokens)
        if tokens:
            self.subscribe_nowait(tokens)

    # ------------------------------------------------------------------------------ rolling series

    async def _roll_loop(self, first_ok: bool) -> None:
        """Roll every ``roll_interval_s`` (after a failure: backoff with jitter); in between,
        unsubscribe the markets whose grace is over (woken early by ``MarketResolved``)."""
        p = self.params
        assert self._clock is not None
        clock = self._clock
        backoff = p.backoff_initial_s
        next_round = anyio.current_time() + (p.roll_interval_s if first_ok else self._jitter(backoff))
        if not first_ok:
            backoff = min(backoff * 2, p.backoff_max_s)
        while True:
            if anyio.current_time() >= next_round:
                if await self._roll_round_safe():
                    backoff = p.backoff_initial_s
                    next_round = anyio.current_time() + p.roll_interval_s
                else:
                    next_round = anyio.current_time() + self._jitter(backoff)
                    backoff = min(backoff * 2, p.backoff_max_s)
            try:
                now_ns = clock.now()
                self._expire(now_ns)
                due = self._next_due()
            except Exception as exc:  # noqa: BLE001 - a bug here must not end the roll
                logger.opt(exception=exc).error("polymarket feed {}: roll housekeeping failed", self.name)
                due = None
            wait = next_round - anyio.current_time()
            if due is not None:
                wait = min(wait, max(0.01, (due - now_ns) / NS))
            self._roll_wake = wake = anyio.Event()
            with anyio.move_on_after(max(0.0, wait)):
                await wake.wait()
            self._roll_wake = None

    def _jitter(self, backoff: float) -> float:
        return backoff / 2 + self._rng.uniform(0, backoff / 2)

    async def _roll_round_safe(self) -> bool:
        """One roll; False (counted, logged) when it failed. Only a closed door propagates."""
        try:
            await self._roll_round()
        except Exception as exc:  # noqa: BLE001 - a catalog hiccup or bad answer never ends the feed
            if _door_closed(exc):
                raise
            self.stats["roll_errors"] += 1
            logger.warning("polymarket feed {}: roll via {} failed ({}); retrying with backoff",
                           self.name, self.params.gamma_url, _describe(exc))  # fmt: skip
            return False
        self.stats["rolls"] += 1
        return True

    async def _roll_round(self) -> None:
        p = self.params
        assert self._clock is not None
        now_s = self._clock.now() // NS
        async with GammaClient(p.gamma_url, session=self._session, retries=0) as client:
            if self._updown:
                await self._roll_windows(client, now_s)
            for name in self._gseries:
                await self._roll_gamma_series(client, name)

    async def _roll_windows(self, client: GammaClient, now_s: int) -> None:
        """The up/down series: fetch the windows from now to ``roll_ahead`` ahead not known yet."""
        p = self.params
        want: dict[str, tuple[str, int, int]] = {}  # slug -> (series, start, end)
        current: dict[str, int] = {}
        for name in self._updown:
            dur = DURATIONS[name.rsplit("-", 1)[1]]
            start = current[name] = window_start(name, now_s)
            for k in range(p.roll_ahead + 1):
                s = start + k * dur
                slug = window_slug(name, s)
                if slug not in self._window_slugs:
                    want[slug] = (name, s, s + dur)
        # forget the slugs of windows gone by (only the current and later ones are asked for)
        oldest = min(current.values())
        for slug in [k for k, v in self._window_slugs.items() if v < oldest]:
            del self._window_slugs[slug]
        for slug in [k for k in self._not_listed if k not in want]:
            del self._not_listed[slug]
        slugs = list(want)
        for i in range(0, len(slugs), 100):
            chunk = slugs[i : i + 100]
            resp = await client.events(slug=chunk, limit=len(chunk))
            found: dict[str, list[MarketInfo]] = {}
            for info in resp.infos(self._clock.now() if self._clock else 0):
                key = info.event_slug if info.event_slug in want else info.slug
                if key in want and info.market not in self._done:  # nothing Gamma was not asked for
                    found.setdefault(key, []).append(info)
            new: list[tuple[MarketInfo, str, int]] = []
            for slug in chunk:
                infos = found.get(slug, [])
                if not infos or not all(is_tradable(i) or i.closed for i in infos):
                    n = self._not_listed.get(slug, 0)
                    self._not_listed[slug] = n + 1
                    self.stats["windows_not_listed"] += 1
                    if n == 0:
                        logger.info("polymarket feed {}: window {} not {} at Gamma yet; asking again next round",
                                    self.name, slug, "tradable" if infos else "listed")  # fmt: skip
                    continue
                series, start, end = want[slug]
                self._window_slugs[slug] = start
                self._not_listed.pop(slug, None)
                new += [(i, series, i.end_ts or end * NS) for i in infos if not i.closed]
            await self._add_rolled(resp, new)

    async def _roll_gamma_series(self, client: GammaClient, name: str) -> None:
        """A Gamma series slug: its open events again; markets not seen yet are added."""
        ids = self._series_ids.get(name)
        if ids is None:
            found = await client.series(slug=[name])
            ids = [str(s["id"]) for s in found if isinstance(s, dict) and s.get("id") is not None] \
                if isinstance(found, list) else []  # fmt: skip
            if not ids:
                n = self._series_missing.get(name, 0)
                self._series_missing[name] = n + 1
                self.stats["windows_not_listed"] += 1
                if n == 0:
                    logger.warning("polymarket feed {}: no Gamma series {!r}; asking again next round", self.name, name)
                return
            self._series_missing.pop(name, None)
            self._series_ids[name] = ids
        for sid in ids:
            async for page in client.events_keyset(series_id=sid, closed=False, max_pages=ROLL_MAX_PAGES):
                infos = page.infos(self._clock.now() if self._clock else 0)
                new = [(i, name, 0) for i in infos
                       if is_tradable(i) and i.market not in self._rolled and i.market not in self._done
                       and not all(a in self._where for a in i.asset_ids)]  # fmt: skip
                await self._add_rolled(page, new)

    async def _add_rolled(self, resp: GammaResponse, new: list[tuple[MarketInfo, str, int]]) -> None:
        """Send ``resp`` through the door, then subscribe the tokens of ``new`` (market, series,
        end ns; 0 = only its resolution ends it). Nothing new: nothing is sent."""
        new = [(i, s, e) for i, s, e in new if i.market not in self._rolled]
        if not new:
            return
        assert self._send is not None and self._clock is not None
        await self._send.send(InboundRecord(self._clock.now(), "polymarket.gamma", resp.message()))
        tokens: list[str] = []
        for info, series, end_ns in dict((i.market, (i, s, e)) for i, s, e in new).values():
            self._rolled[info.market] = _Rolled(info.market, info.slug, series, tuple(info.asset_ids), end_ns)
            tokens += info.asset_ids
            self.stats["windows_added"] += 1
            logger.info("polymarket feed {}: following {} ({}){}", self.name, info.slug or info.market, series,
                        f", ends {end_ns // NS}" if end_ns else "")  # fmt: skip
        if tokens:
            self.subscribe_nowait(tokens)

    def _follow_unresolved(self) -> None:
        """After a restart: the windows of our series that the kernel knows (its recovered
        catalog), whose window has ended but whose resolution it has not seen, are followed
        again until their ``market_resolved`` (or ``unresolved_grace_s``): otherwise the shares
        they settle would wait for ever."""
        k = self._kernel
        if k is None or self._clock is None:
            return
        now = self._clock.now()
        keep = round(self.params.unresolved_grace_s * NS)
        series = set(self.params.series)
        tokens: list[str] = []
        for info in sorted(k.catalog, key=lambda i: i.market):
            if (info.series not in series or info.market in k.catalog.resolved or info.market in self._rolled
                    or not info.end_ts or info.end_ts > now or now > info.end_ts + keep):  # fmt: skip
                continue
            self._rolled[info.market] = _Rolled(info.market, info.slug, info.series, tuple(info.asset_ids), info.end_ts)
            tokens += info.asset_ids
            self.stats["windows_added"] += 1
            logger.info("polymarket feed {}: following {} again until its resolution (ended {} s ago)", self.name,
                        info.slug or info.market, (now - info.end_ts) // NS)  # fmt: skip
        if tokens:
            self.subscribe_nowait(tokens)

    def _on_resolved(self, ev: MarketResolved) -> None:
        """A market resolved: no book dump to expect for its tokens; a rolled one is let go
        ``unsubscribe_after_s`` later."""
        r = self._rolled.get(ev.market)
        for a in ev.asset_ids or (r.assets if r is not None else ()):
            shard = self._where.get(a)
            if shard is None:
                continue
            self._no_dump.add(a)
            if shard.conn is not None:
                shard.conn.pending.pop(a, None)
        if r is not None and not r.resolved_ns:
            r.resolved_ns = self._clock.now() if self._clock is not None else ev.ts
            if self._roll_wake is not None:
                self._roll_wake.set()

    def _next_due(self) -> int | None:
        grace = round(self.params.unsubscribe_after_s * NS)
        unresolved = round(self.params.unresolved_grace_s * NS)
        dues = [d for r in self._rolled.values() if (d := r.due(grace, unresolved)) is not None]
        return min(dues) if dues else None

    def _expire(self, now_ns: int) -> None:
        """Unsubscribe the rolled markets whose end (or resolution) plus the grace has passed."""
        grace = round(self.params.unsubscribe_after_s * NS)
        unresolved = round(self.params.unresolved_grace_s * NS)
        for cid, r in list(self._rolled.items()):
            due = r.due(grace, unresolved)
            if due is None or now_ns < due:
                continue
            del self._rolled[cid]
            self._done[cid] = None
            while len(self._done) > ROLL_DONE_MAX:
                del self._done[next(iter(self._done))]
            gone = [a for a in r.assets if a not in self._pinned]
            if gone:
                self.unsubscribe_nowait(gone)
            self.stats["windows_removed"] += 1
            logger.info("polymarket feed {}: let go of {} ({}): {}", self.name, r.slug or cid, r.series,
                        "resolved" if r.resolved_ns else
                        f"no resolution seen {self.params.unresolved_grace_s:g} s after the window's end")  # fmt: skip

    async def subscribe(self, assets: Iterable[str]) -> None:
        """Subscribe to more assets (already subscribed ones are ignored)."""
        self.subscribe_nowait(assets)
        await anyio.lowlevel.checkpoint()

    async def unsubscribe(self, assets: Iterable[str]) -> None:
        """Stop receiving ``assets`` (unknown ones are ignored)."""
        self.unsubscribe_nowait(assets)
        await anyio.lowlevel.checkpoint()

    def subscribe_nowait(self, assets: Iterable[str]) -> None:
        """Synchronous :meth:`subscribe`, for code on the feed's event loop (not thread-safe):
        the messages are queued on the sockets and new connections are scheduled."""
        assets = [assets] if isinstance(assets, str) else list(assets)
        for a in assets:
            if not isinstance(a, str) or not a:
                raise ValueError(f"polymarket feed {self.name!r}: subscribe: bad asset id {a!r}")
        added, _ = self._add(assets)
        if not added:
            return
        self.stats["subscribes"] += 1
        now = anyio.current_time() if self._tg is not None else 0.0
        p = self.params
        for shard, new in added.items():
            conn = shard.conn
            if conn is not None and conn.open:
                for a in new:
                    if a not in self._no_dump:
                        conn.pending[a] = now + p.dump_timeout_s
                msg = {"operation": "subscribe", "assets_ids": new, "custom_feature_enabled": p.custom_feature_enabled}
                conn.send_text(msgspec.json.encode(msg).decode())
            elif shard.wake is not None:
                shard.wake.set()
            if self._tg is not None and not shard.started:
                self._start_shard(shard)
        logger.info("polymarket feed {}: subscribed {} asset(s) ({} connection(s))",
                    self.name, sum(map(len, added.values())), len(self._shards))  # fmt: skip

    def unsubscribe_nowait(self, assets: Iterable[str]) -> None:
        """Synchronous :meth:`unsubscribe` (not thread-safe)."""
        assets = [assets] if isinstance(assets, str) else list(assets)
        removed: dict[_Shard, list[str]] = {}
        for a in dict.fromkeys(assets):
            shard = self._where.pop(a, None)
            if shard is None:
                continue
            del shard.assets[a]
            self._resync_queue.pop(a, None)
            self._no_dump.discard(a)
            removed.setdefault(shard, []).append(a)
        if not removed:
            return
        self.stats["unsubscribes"] += 1
        for shard, gone in removed.items():
            conn = shard.conn
            if conn is None or not conn.open:
                continue
            for a in gone:
                conn.pending.pop(a, None)
            if shard.assets:
                conn.send_text(msgspec.json.encode({"operation": "unsubscribe", "assets_ids": gone}).decode())
            else:
                conn.fail("idle", "no assets left")
        logger.info("polymarket feed {}: unsubscribed {} asset(s)", self.name, sum(map(len, removed.values())))

    async def fetch_books(self, assets: Sequence[str]) -> bytes:
        """``POST {rest_url}/books`` for ``assets`` in one request (callers batch: the venue
        refuses large payloads) and return the raw response body. 429, 5xx and transport errors
        are retried with backoff (``Retry-After`` honoured); raises :class:`BooksFetchError`."""
        p = self.params
        body = msgspec.json.encode([{"token_id": a} for a in assets])
        url = p.rest_url.rstrip("/") + "/books"
        session = self._session
        if session is None or session.closed:
            async with aiohttp.ClientSession() as own:
                return await self._post_books(own, url, body)
        return await self._post_books(session, url, body)

    # ------------------------------------------------------------------------------ shards

    def _add(self, assets: Iterable[str]) -> tuple[dict[_Shard, list[str]], int]:
        """Place new assets in shards with room (then new shards). Returns the additions by
        shard and the number of duplicates skipped."""
        size = self.params.shard_size
        added: dict[_Shard, list[str]] = {}
        dupes = 0
        free = iter([s for s in self._shards if len(s.assets) < size])
        shard = next(free, None)
        for a in assets:
            if a in self._where:
                dupes += 1
                continue
            while shard is not None and len(shard.assets) >= size:
                shard = next(free, None)
            if shard is None:
                shard = _Shard(len(self._shards))
                self._shards.append(shard)
            shard.assets[a] = None
            self._where[a] = shard
            added.setdefault(shard, []).append(a)
        return added, dupes

    def _start_shard(self, shard: _Shard) -> None:
        assert self._tg is not None
        shard.started = True
        self._tg.start_soon(self._shard_loop, shard, name=f"{self.name}-shard-{shard.index}")

    async def _shard_loop(self, shard: _Shard) -> None:
        p = self.params
        assert self._send is not None and self._clock is not None
        send, clock = self._send, self._clock
        backoff = p.backoff_initial_s
        while True:
            if not shard.assets:
                shard.wake = anyio.Event()
                await shard.wake.wait()
                shard.wake = None
                continue
            try:
                conn = await self._connection(shard)
                if conn.kind == "idle":
                    logger.info("polymarket feed {}: shard {} closed: no assets left", self.name, shard.index)
                    continue
                self.stats["reconnects"][conn.kind] += 1
                if conn.opened_at > 0 and not conn.pending and conn.pongs > 0:
                    backoff = p.backoff_initial_s  # it was healthy: start the backoff over
                delay = backoff / 2 + self._rng.uniform(0, backoff / 2)
                backoff = min(backoff * 2, p.backoff_max_s)
                if conn.opened_at > 0:
                    self.stats["disconnects"] += 1
                    ts = clock.now()
                    detail = f"shard {shard.index}: {conn.kind}: {conn.detail}"
                    ev = FeedDisconnected(ts=ts, feed=self.name, detail=detail, asset_ids=tuple(shard.assets))
                    await send.send(InboundRecord(ts, "events", ev))
                logger.warning("polymarket feed {}: shard {} {}: {}; reconnecting in {:.2f}s",
                               self.name, shard.index, conn.kind, conn.detail, delay)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a bug here must not end the feed
                if _door_closed(exc):
                    raise
                logger.opt(exception=exc).error("polymarket feed {}: shard {} failed; restarting it",
                                                self.name, shard.index)  # fmt: skip
                self.stats["reconnects"]["internal_error"] += 1
                delay = backoff
                backoff = min(backoff * 2, p.backoff_max_s)
            await anyio.sleep(delay)

    async def _connection(self, shard: _Shard) -> _Conn:
        """One connection: connect, subscribe, forward until it fails. Returns why it ended."""
        p = self.params
        assert self._send is not None and self._clock is not None and self._session is not None
        send, clock = self._send, self._clock
        conn = _Conn(shard.index)
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
        out_send, out_recv = anyio.create_memory_object_stream[str](math.inf)
        try:
            now = anyio.current_time()
            conn.ws, conn.out, conn.opened_at = ws, out_send, now
            assets = list(shard.assets)
            conn.pending = dict.fromkeys((a for a in assets if a not in self._no_dump), now + p.dump_timeout_s)
            async with anyio.create_task_group() as tg:
                conn.scope = tg.cancel_scope
                shard.conn = conn  # from here subscribe() talks to this socket, after this message:
                conn.send_text(msgspec.json.encode(
                    {"assets_ids": assets, "type": "market", "custom_feature_enabled": p.custom_feature_enabled}
                ).decode())  # fmt: skip
                tg.start_soon(self._writer, conn, out_recv)
                self.stats["connects"] += 1
                ts = clock.now()
                detail = f"shard {shard.index}: {len(assets)} assets"
                await send.send(InboundRecord(ts, "events", FeedConnected(ts=ts, feed=self.name, detail=detail)))
                logger.info("polymarket feed {}: connected {}", self.name, detail)
                tg.start_soon(self._keepalive, conn)
                await self._reader(conn)
        except Exception as exc:  # noqa: BLE001 - one connection's failure never kills the feed
            if _door_closed(exc):
                raise
            if not conn.kind:
                conn.kind, conn.detail = "error", _describe(exc)
                logger.opt(exception=exc).debug("polymarket feed {}: shard {} error", self.name, shard.index)
        finally:
            if shard.conn is conn:
                shard.conn = None
            out_send.close()
            out_recv.close()
            with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                await ws.close()  # if it times out, aiohttp drops the transport
        return conn

    async def _writer(self, conn: _Conn, recv: Any) -> None:
        try:
            async for text in recv:
                await conn.ws.send_str(text)
        except Exception as exc:  # noqa: BLE001
            conn.fail("send_failed", _describe(exc))

    async def _reader(self, conn: _Conn) -> None:
        assert self._send is not None and self._clock is not None
        send, clock, source, stats = self._send, self._clock, self.params.source, self.stats
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
                stats["frames"] += 1
                stats["bytes"] += len(data)
                if t is binary_t:
                    stats["binary_frames"] += 1
                if len(data) <= 6 and data.strip() == _PONG:
                    conn.pongs += 1
                    conn.ping_since = None
                    stats["pongs"] += 1
                elif conn.pending and (data[:1] == b"[" or b'"book"' in data):
                    self._dumped(conn, data)
                await send.send(InboundRecord(ts, source, data))
            elif t in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                code = ws.close_code if ws.close_code is not None else msg.data
                conn.fail("closed", f"closed by the server (code {code})")
                return
            elif t is aiohttp.WSMsgType.ERROR:
                conn.fail("error", _describe(msg.data) if isinstance(msg.data, BaseException) else str(msg.data))
                return
            # control frames (ping/pong) are answered by aiohttp: nothing to do

    def _dumped(self, conn: _Conn, frame: bytes) -> None:
        pending = conn.pending
        n = 0
        for a in book_asset_ids(frame):
            if pending.pop(a, None) is not None:
                n += 1
        if n:
            conn.dumps += n
            self.stats["dumps"] += n
            if not pending:
                logger.info("polymarket feed {}: shard {}: book dumps received ({} this connection)",
                            self.name, conn.shard, conn.dumps)  # fmt: skip

    async def _keepalive(self, conn: _Conn) -> None:
        """PING on schedule; replace the connection on a missing PONG or a missing dump."""
        p = self.params
        step = min(p.ping_interval_s, p.pong_timeout_s, p.dump_timeout_s) / 4
        next_ping = conn.opened_at + p.ping_interval_s
        while True:
            now = anyio.current_time()
            if now >= next_ping:
                conn.send_text("PING")
                self.stats["pings"] += 1
                if conn.ping_since is None:
                    conn.ping_since = now
                next_ping += p.ping_interval_s
                if next_ping <= now:
                    next_ping = now + p.ping_interval_s
            if conn.ping_since is not None and now - conn.ping_since >= p.pong_timeout_s:
                conn.fail("pong_timeout", f"no PONG for {now - conn.ping_since:.2f}s")
                return
            wake = min(next_ping, now + step)
            if conn.ping_since is not None:
                wake = min(wake, conn.ping_since + p.pong_timeout_s)
            if conn.pending:
                first = min(conn.pending.values())
                if first <= now:
                    late = [a for a, d in conn.pending.items() if d <= now]
                    conn.fail("dump_timeout", f"{len(late)} asset(s) without a book {p.dump_timeout_s}s after "
                                              f"subscribing (first {late[0]})")  # fmt: skip
                    return
                wake = min(wake, first)
            await anyio.sleep(max(0.0, wake - now))

    # ------------------------------------------------------------------------------ resync

    def _on_book_health(self, ev: BookHealth) -> None:
        a = ev.asset_id
        shard = self._where.get(a)
        if shard is None:
            return
        if ev.healthy:
            self._resync_queue.pop(a, None)
            return
        if not self.params.resync_rest or a in self._no_dump:  # a resolved market has no book left
            return
        reason = ev.reason.lower()
        if any(r in reason for r in self.RECONNECT_REASONS):
            return
        conn = shard.conn
        if conn is None or not conn.open or a in conn.pending:
            return  # a dump is on its way (or comes with the next connection)
        if a not in self._resync_queue:
            self.stats["resync_requests"] += 1
            self._resync_queue[a] = None
            if self._resync_wake is not None:
                self._resync_wake.set()

    def request_snapshots(self, assets: Iterable[str] | None = None) -> int:
        """Queue REST ``/books`` snapshots of ``assets`` (default: all subscribed ones), e.g.
        when a recorder starts a new file. Returns how many were queued."""
        n = 0
        for a in self.assets if assets is None else assets:
            if a in self._where and a not in self._resync_queue:
                self._resync_queue[a] = None
                n += 1
        if n and self._resync_wake is not None:
            self._resync_wake.set()
        return n

    def _start_resync(self) -> None:
        if self._kernel is None or not self.params.resync_rest or self._resync_started or self._tg is None:
            return
        self._resync_started = True
        self._tg.start_soon(self._resync_loop, name=f"{self.name}-resync")

    async def _resync_loop(self) -> None:
        p = self.params
        assert self._send is not None and self._clock is not None
        send, clock = self._send, self._clock
        try:
            while True:
                queue = self._resync_queue
                if not queue:
                    self._resync_wake = wake = anyio.Event()
                    await wake.wait()
                    continue
                now = anyio.current_time()
                ready: list[str] = []
                next_due = math.inf
                for a in list(queue):
                    due = self._last_resync.get(a, -math.inf) + p.resync_min_interval_s
                    if a not in self._where:
                        del queue[a]
                    elif due <= now:
                        del queue[a]
                        ready.append(a)
                    else:
                        next_due = min(next_due, due)
                for i in range(0, len(ready), p.rest_batch):
                    chunk = ready[i : i + p.rest_batch]
                    started = anyio.current_time()
                    for a in chunk:
                        self._last_resync[a] = started
                    try:
                        body = await self.fetch_books(chunk)
                    except BooksFetchError as exc:
                        self.stats["resync_errors"] += 1
                        if exc.retryable:
                            for a in chunk:
                                if a in self._where:
                                    queue.setdefault(a, None)
                        logger.warning("polymarket feed {}: resync of {} book(s) failed ({}){}", self.name,
                                       len(chunk), exc, "; will retry" if exc.retryable else "")  # fmt: skip
                        continue
                    ts = clock.now()
                    await send.send(InboundRecord(ts, "polymarket.book", body))
                    self.stats["resync_posts"] += 1
                    self.stats["resyncs"] += len(chunk)
                    logger.info("polymarket feed {}: resynced {} book(s) over REST", self.name, len(chunk))
                if not ready and next_due < math.inf:
                    self._resync_wake = wake = anyio.Event()
                    with anyio.move_on_after(max(0.0, next_due - now)):
                        await wake.wait()
        finally:
            self._resync_started = False

    async def _post_books(self, session: aiohttp.ClientSession, url: str, body: bytes) -> bytes:
        p = self.params
        backoff = p.backoff_initial_s
        timeout = aiohttp.ClientTimeout(total=REST_TIMEOUT_S)
        headers = {"Content-Type": "application/json"}
        why = ""
        status = 0
        for attempt in range(1, REST_ATTEMPTS + 1):
            wait = 0.0
            try:
                async with session.post(url, data=body, headers=headers, timeout=timeout) as resp:
                    data = await resp.read()
                    status = resp.status
                    if 200 <= status < 300:
                        return data
                    why = f"HTTP {status}: {data[:200].decode(errors='replace')}"
                    if status != 429 and status < 500:
                        raise BooksFetchError(f"POST /books: {why}", status, retryable=False)
                    wait = _retry_after(resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                status, why = 0, _describe(exc)
            if attempt == REST_ATTEMPTS:
                break
            delay = max(wait, backoff / 2 + self._rng.uniform(0, backoff / 2))
            delay = min(delay, p.backoff_max_s)
            backoff = min(backoff * 2, p.backoff_max_s)
            logger.info("polymarket feed {}: POST /books attempt {} failed ({}); retrying in {:.2f}s",
                        self.name, attempt, why, delay)  # fmt: skip
            await anyio.sleep(delay)
        raise BooksFetchError(f"POST /books failed {REST_ATTEMPTS} times, last: {why}", status, retryable=True)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _validate(name: str, p: Any) -> None:
    """Bounds the type system does not enforce on a directly built Params; errors name the field."""
    where = f"polymarket feed {name!r}: params"

    def bad(field: str, what: str) -> ValueError:
        return ValueError(f"{where}.{field} {what}, got {getattr(p, field)!r}")

    if not isinstance(p.shard_size, int) or not 1 <= p.shard_size <= MAX_SHARD_SIZE:
        raise bad("shard_size", f"must be an integer from 1 to {MAX_SHARD_SIZE}")
    if not isinstance(p.rest_batch, int) or p.rest_batch < 1:
        raise bad("rest_batch", "must be an integer >= 1")
    for f in ("ping_interval_s", "pong_timeout_s", "dump_timeout_s", "backoff_initial_s", "backoff_max_s"):
        v = getattr(p, f)
        if not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
            raise bad(f, "must be a positive number of seconds")
    for f in ("resync_min_interval_s", "roll_interval_s", "unsubscribe_after_s"):
        v = getattr(p, f)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or not math.isfinite(v):
            raise bad(f, "must be a number of seconds >= 0")
    if isinstance(p.roll_ahead, bool) or not isinstance(p.roll_ahead, int) or not 0 <= p.roll_ahead <= 1000:
        raise bad("roll_ahead", "must be an integer from 0 to 1000")
    for i, s in enumerate(p.series):
        if not isinstance(s, str) or not s.strip():
            raise ValueError(f"{where}.series[{i}] must be a non-empty series name, got {s!r}")
    if p.backoff_max_s < p.backoff_initial_s:
        raise bad("backoff_max_s", f"must be >= backoff_initial_s ({p.backoff_initial_s})")
    if not p.ws_url.startswith(("ws://", "wss://")):
        raise bad("ws_url", "must be a ws:// or wss:// URL")
    if not p.rest_url.startswith(("http://", "https://")):
        raise bad("rest_url", "must be an http:// or https:// URL")
    if not p.source:
        raise bad("source", "must not be empty")
    for i, a in enumerate(p.assets):
        if not isinstance(a, str) or not a:
            raise ValueError(f"{where}.assets[{i}] must be a non-empty token id string, got {a!r}")


def _is_updown(series: str) -> bool:
    """A recurring up/down series (windowed by the clock), not a Gamma series slug."""
    try:
        window_start(series, 0)
    except ValueError:
        return False
    return True


def _is_condition_id(s: str) -> bool:
    return len(s) == 66 and s.startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in s[2:])
