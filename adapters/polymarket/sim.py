"""A local Polymarket exchange simulator: market-channel WebSocket, CLOB REST and Gamma, offline.

One aiohttp server (127.0.0.1, ephemeral port by default) speaks the protocol of PROTOCOL.md:

* ``/ws/market``: the market channel. The initial ``{"assets_ids":[...],"type":"market",...}``
  message and ``{"operation":"subscribe"|"unsubscribe",...}`` messages; the subscription dump is
  ONE frame, a JSON array of ``book`` objects with a trailing newline; text ``PING`` gets text
  ``PONG``. The stream is ``price_change`` (current schema, both tokens of a market in every
  frame), trade-triggered ``book`` frames followed a few ms later by a ``last_trade_price``
  print, ``tick_size_change``, and with ``custom_feature_enabled`` ``best_bid_ask``,
  ``new_market`` and ``market_resolved``. Every hash is the real book hash (§1.8), computed with
  :func:`polybot.bookhash.book_hash_wire`; ``min_order_size`` "5" and ``neg_risk`` (false unless
  ``SimConfig.neg_risk``) enter it as on the real venue.
* CLOB REST: ``GET /book``, ``POST /books``, ``GET /tick-size``, ``/neg-risk``, ``/time``,
  ``/ok``, ``/markets/0x<condition id>``.
* Gamma: ``GET /markets`` (filters ``id``, ``slug``, ``condition_ids``, ``clob_token_ids``,
  ``closed``, ``active``, ``limit``, ``offset``), ``/markets/keyset``, ``/markets/{id}``,
  ``/events`` (also ``series_id``, ``tag_slug``), ``/events/keyset``, ``/events/{id}``, ``/series``.
* Control (JSON, GET or POST, parameters in the query or a JSON body) under ``/_sim/``:
  ``state``, ``step``, ``pause``, ``resume``, ``drop``, ``freeze``, ``malformed``, ``crossed``,
  ``tick_size``, ``trade``, ``resolve``, ``add_market``, ``sports``, ``advance`` (``seconds``: jump
  the simulator's time), ``series``; the same operations are methods of :class:`SimServer`. Other
  actions go to the exchange.
* Sports (``SimConfig.sports``, :class:`~adapters.polymarket.simsports.SimSports`,
  ``server.sports``): a live basketball game with the score feed ``/ws/sports`` (Polymarket's
  sports WebSocket), The Odds API v4 ``/v4/sports/{sport}/odds``, Gamma ``/series`` and a
  moneyline market (outcomes [home, away]) whose book re-centres on the game's TRUE win
  probability ``market_lag_s`` after each score; the random walk leaves it alone. Driven by
  :meth:`SimServer.sports_tick` with ``autostart=False``.
* Series (``SimConfig.series``, :class:`~adapters.polymarket.simseries.SimSeries`,
  ``server.series``): recurring up/down markets (``btc-updown-5m``, ...), one per window under its
  real slug, listed at Gamma ``series_ahead`` windows ahead, walked like the others, resolved at
  the window's end (``market_resolved``, Gamma closed). :meth:`SimServer.advance` jumps time.
* Trading (:class:`~adapters.polymarket.simexchange.SimExchange`, ``server.exchange``): L1/L2
  auth, ``POST /order`` and ``/orders``, cancels, ``/data/orders``, ``/data/order/{id}``,
  ``/data/trades``, ``/balance-allowance``, ``/v1/heartbeats``, the user channel ``/ws/user``,
  the Data API's ``/v2/positions``, ``/api/geoblock``, ``/version`` and the trading faults. Marketable
  orders take liquidity from the walk's book (published like the walk's own trades); resting
  orders stay with the exchange and fill as makers when a walk event crosses them.

The markets are a seeded random walk of binary markets. Each market keeps ONE book in YES terms
(integer base units, 6 decimals); the NO token's book is rendered from it as the mirror (a YES
bid at p with size s is a NO ask at 1 - p with size s). ``step(n)`` advances the walk by n
events without waiting (tests use it with ``autostart=False``); the same seed and the same calls
produce the same frames. With ``recording=PATH`` the server instead replays a recording's frames
(bare frames, journal envelopes, or ``{"receivedAt","payloadUtf8"}`` captures) to subscribed
clients, and REST serves the latest book seen.

Wire details copied from the real captures: the dump and REST books are compact JSON; the
``price_change``, trade ``book``, ``last_trade_price``, ``best_bid_ask`` and ``market_resolved``
frames use ``", "`` between items (``{"market":"0x…", "price_changes":[…], …}``). Frames for a
market go to every connection subscribed to either of its tokens (real behaviour: the other
token's entries and books arrive too); only the subscription dump is filtered per asset.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import signal
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import msgspec
from aiohttp import WSMsgType, web
from loguru import logger

from polybot.bookhash import book_hash_wire, ltp_candidates, ltp_str
from polybot.units import ONE, from_units, to_units

from .simchain import SimChain
from .simexchange import SimExchange, stop_task

if TYPE_CHECKING:  # pragma: no cover
    from .simseries import SimSeries
    from .simsports import SimSports

SOURCE = "polymarket.market"

__all__ = ["SimConfig", "SimServer", "load_recording", "run_sim"]

MIN_ORDER_SIZE = "5"
WS_PATH = "/ws/market"
NO_BOOK = {"error": "No orderbook exists for the requested token id"}
BID, ASK = 0, 1
CENT = 10_000  # 0.01 share / 0.01 price in base units
TICKS = {"0.01": 10_000, "0.001": 1_000}
FEE_SCHEDULE = {"exponent": 1, "rate": 0.04, "takerOnly": True, "rebateRate": 0.25}


class SimConfig(msgspec.Struct, kw_only=True):
    """Simulator settings. ``clock`` returns ns (tests pass a fixed or stepped clock)."""

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 1
    n_markets: int = 3
    rate: float = 20.0  # walk events (price-change batches, trades, ...) per second, all markets
    tick_size: str = "0.01"  # "0.01" or "0.001"
    levels: int = 15  # price levels per side
    trade_prob: float = 0.05  # per walk event: a taker crosses the top
    split_prob: float = 0.1  # per price-change batch: sent as 2-3 frames sharing timestamp and hash
    tick_change_prob: float = 0.0  # per walk event: a spontaneous tick-size change
    recording: str | None = None  # replay this recording instead of the walk
    speed: float = 1.0  # recording pacing: 1 real time, 10 ten times faster, 0 as fast as possible
    clock: Callable[[], int] = time.time_ns
    autostart: bool = True  # run the walk / replay by itself once started (else: step())
    # the trading side (adapters/polymarket/simexchange.py)
    chain_id: int = 137  # EIP-712 domains of ClobAuth and the orders
    neg_risk: bool = False  # every walk market is neg-risk (orders signed against the neg-risk exchange)
    cash: str = "10000"  # pUSD each account starts with
    allowance: str | None = None  # pUSD approved to the exchanges; None = unlimited
    heartbeat_timeout_s: float = 10.0  # cancel a key's orders after this long without a heartbeat
    mined_ms: int = 50  # trade MATCHED -> MINED after this long
    confirmed_ms: int = 100  # ... and -> CONFIRMED (from the match)
    geoblocked: bool = False  # /api/geoblock answers blocked
    # a live game (adapters/polymarket/simsports.py): score feed, bookmaker odds, a lagging market
    sports: bool = False
    league: str = "nba"  # nba | wnba | ncaab (clock, scoring, The Odds API sport key)
    home: str = "Boston Celtics"  # outcome 0 of the moneyline market
    away: str = "Los Angeles Lakers"
    p0: float = 0.60  # pregame home win probability
    game_seconds: float = 240.0  # wall seconds for the whole regulation game
    market_lag_s: float = 3.0  # the market re-centres on the TRUE probability this long after an update
    seconds_delay: int = 3  # Gamma secondsDelay: marketable orders match this much later while live
    pregame_s: float = 5.0  # the tip comes this long after the game is created (server start)
    sports_loop: bool = False  # a finished game is followed by a new one (new gameId and market)
    ping_interval_s: float = 5.0  # /ws/sports: the server's "ping" period
    pong_timeout_s: float = 10.0  # ... and how long a "pong" may take before the server closes
    odds_quota: int = 500  # The Odds API credits per apiKey
    # the fake chain (adapters/polymarket/simchain.py: JSON-RPC at /rpc, the relayer at /relayer)
    chain_block_s: float = 1.0  # an empty block this often (confirmations accrue)
    chain_pol: str = "10"  # POL (gas) every account starts with on the fake chain
    # recurring up/down series (adapters/polymarket/simseries.py): a market per window, real slugs
    series: list[str] = []  # e.g. ["btc-updown-5m"]
    series_ahead: int = 1  # windows listed at Gamma ahead of the current one
    series_resolve_delay_s: float = 0.0  # a window resolves this long after it ends

    def __post_init__(self) -> None:
        if self.tick_size not in TICKS:
            raise ValueError(f"tick_size must be one of {sorted(TICKS)}, not {self.tick_size!r}")
        if self.n_markets < 0 or self.levels < 3 or self.rate < 0 or self.speed < 0:
            raise ValueError("n_markets >= 0, levels >= 3, rate >= 0, speed >= 0 required")
        for name in ("trade_prob", "split_prob", "tick_change_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.chain_block_s < 0:
            raise ValueError("chain_block_s must be >= 0")
        for name in ("cash", "allowance", "chain_pol"):
            v = getattr(self, name)
            if v is not None and to_units(str(v)) < 0:  # to_units raises on non-decimals
                raise ValueError(f"{name} must be >= 0")
        if self.heartbeat_timeout_s <= 0 or not 0 <= self.mined_ms <= self.confirmed_ms:
            raise ValueError("heartbeat_timeout_s > 0 and 0 <= mined_ms <= confirmed_ms required")
        if self.sports:
            self._check_sports()
        if self.series:
            from .simseries import is_updown_series

            bad = [s for s in self.series if not isinstance(s, str) or not is_updown_series(s)]
            if bad:
                raise ValueError(f"series: not recurring up/down series (e.g. btc-updown-5m): {bad!r}")
            if self.recording:
                raise ValueError("series cannot be combined with a recording")
            if self.series_ahead < 0 or not self.series_resolve_delay_s >= 0:
                raise ValueError("series_ahead >= 0 and series_resolve_delay_s >= 0 required")

    def _check_sports(self) -> None:
        from .simsports import LEAGUES, team_names

        if self.recording:
            raise ValueError("sports cannot be combined with a recording")
        if self.league not in LEAGUES:
            raise ValueError(f"league must be one of {sorted(LEAGUES)}, not {self.league!r}")
        if not self.home.strip() or not self.away.strip() or self.home == self.away:
            raise ValueError("home and away must be two different non-empty team names")
        if team_names(self.home)[1] == team_names(self.away)[1]:
            raise ValueError(f"home and away have the same nickname {team_names(self.home)[1]!r} (the market's "
                             "outcomes): use other names")
        if not 0.01 <= self.p0 <= 0.99:
            raise ValueError("p0 must be within [0.01, 0.99]")
        for name in ("game_seconds", "ping_interval_s", "pong_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("market_lag_s", "pregame_s", "seconds_delay", "odds_quota"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _spaced(obj: Any) -> str:
    """The separators of the real stream frames: ``", "`` between items, ``":"`` after keys."""
    return json.dumps(obj, separators=(", ", ":"))


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wire(bids: dict[int, int], asks: dict[int, int]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Wire order: bids ascending, asks descending (best last on both sides)."""
    return ([(from_units(p), from_units(bids[p])) for p in sorted(bids)],
            [(from_units(p), from_units(asks[p])) for p in sorted(asks, reverse=True)])  # fmt: skip


def _levels(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"price": p, "size": s} for p, s in pairs]


def _mirror(levels: dict[int, int]) -> dict[int, int]:
    return {ONE - p: s for p, s in levels.items()}


def _top_str(bb: int | None, ba: int | None) -> tuple[str, str]:
    return (from_units(bb) if bb is not None else "0", from_units(ba) if ba is not None else "1")


class _Market:
    """A binary market. ``bids``/``asks`` are the YES book; the NO book is their mirror."""

    def __init__(self, idx: int, cid: str, yes: str, no: str, question_id: str, tick: int, created_ns: int) -> None:
        self.idx = idx
        self.cid = cid
        self.yes = yes
        self.no = no
        self.gamma_id = str(900_000 + idx)
        self.question_id = question_id
        self.slug = f"sim-market-{idx}"
        self.question = f"Sim market {idx}: will the random walk close above 0.5?"
        self.tick = tick
        self.auto_tick = True
        self.created_ns = created_ns
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.ltp = ""  # the 3-decimal string the hash uses, or ""
        self.ts = str(created_ns // 1_000_000)  # the books' timestamp: last update (ms string)
        self.resolved = False
        self.winner: str | None = None
        self.last_top: tuple[int | None, int | None] = (None, None)
        self.neg_risk = False  # enters the book hash, /neg-risk, Gamma and the order domain
        self.outcomes: tuple[str, str] = ("Yes", "No")  # of (yes, no); a sports market: (home, away)
        self.sports: Any = None  # the simsports game run of a sports market
        self.window: Any = None  # the simseries window of a recurring up/down market

    @property
    def assets(self) -> tuple[str, str]:
        return (self.yes, self.no)

    def sides(self, asset: str) -> tuple[dict[int, int], dict[int, int]]:
        if asset == self.yes:
            return self.bids, self.asks
        return _mirror(self.asks), _mirror(self.bids)

    def yes_top(self) -> tuple[int | None, int | None]:
        return (max(self.bids) if self.bids else None, min(self.asks) if self.asks else None)

    def top(self, asset: str) -> tuple[int | None, int | None]:
        bb, ba = self.yes_top()
        if asset == self.yes:
            return bb, ba
        return (ONE - ba if ba is not None else None, ONE - bb if bb is not None else None)

    @property
    def tick_str(self) -> str:
        return from_units(self.tick)

    def book(self, asset: str) -> dict[str, Any]:
        """The book summary with its real hash (REST key order; the dump reorders)."""
        bids, asks = self.sides(asset)
        bw, aw = _wire(bids, asks)
        h = book_hash_wire(self.cid, asset, self.ts, bw, aw, MIN_ORDER_SIZE, self.tick_str, self.neg_risk,
                           self.ltp)
        return {"market": self.cid, "asset_id": asset, "timestamp": self.ts, "hash": h, "bids": _levels(bw),
                "asks": _levels(aw), "min_order_size": MIN_ORDER_SIZE, "tick_size": self.tick_str,
                "neg_risk": self.neg_risk, "last_trade_price": self.ltp}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# recordings


def load_recording(path: str) -> list[tuple[int, str]]:
    """``(ts_ns, frame text)`` of the market-channel frames of a recording, read by the
    project's own readers: journals and bare frames (:class:`polybot.journal.JournalReader`),
    ``received-at`` and ``ws-session`` captures (:mod:`polybot.imports`), ``.gz`` included.
    Text frames (``PONG``) and other sources are skipped."""
    from polybot.imports import ForeignReader, detect_format
    from polybot.journal import INPUT, JournalReader

    from .wire import MarketDecoder

    fmt = detect_format(path)
    reader: Any = (JournalReader(path, bare_source=SOURCE, bare_ts=MarketDecoder.bare_ts) if fmt == "journal"
                   else ForeignReader(path, fmt, source=SOURCE))  # fmt: skip
    return [(ts, msg.decode("utf-8", "replace")) for kind, ts, src, msg in reader
            if kind == INPUT and src == SOURCE and msg[:1] != b'"']  # fmt: skip


class _RecBook:
    __slots__ = ("market", "bids", "asks", "ts", "tick", "hash", "dirty", "version")

    def __init__(self, market: str) -> None:
        self.market = market
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.ts = ""
        self.tick = "0.01"
        self.hash = ""
        self.dirty = True
        self.version = ""  # "v2" for Protocol-V2 positions (it enters the hash)


def _search_ltp(market: str, asset: str, b: _RecBook, first: list[str]) -> str | None:
    """The last-trade-price string ("" or 0.001..0.999) under which ``b`` has its recorded hash:
    the §1.8 search, hashing the common prefix of the payload once."""
    bw, aw = _wire(b.bids, b.asks)
    text = _compact({"market": market, "asset_id": asset, "timestamp": b.ts, "hash": "", "bids": _levels(bw),
                     "asks": _levels(aw), "min_order_size": MIN_ORDER_SIZE, "tick_size": b.tick,
                     "neg_risk": False, "last_trade_price": ""})  # fmt: skip
    head = hashlib.sha1(text[:-2].encode())  # ends with '"last_trade_price":"' + '"}'
    tail = b'"}' if not b.version else b'","version":' + _compact(b.version).encode() + b"}"
    for cand in first + ltp_candidates():
        x = head.copy()
        x.update(cand.encode() + tail)
        if x.hexdigest() == b.hash:
            return cand
    return None


class _Replay:
    """The state a recording's frames imply: latest book per asset, tick, last trade price."""

    def __init__(self, frames: list[tuple[int, str]]) -> None:
        self.frames: list[tuple[int, str, Any]] = []
        for ts, text in frames:
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            self.frames.append((ts, text, obj))
        self.pos = 0
        self.books: dict[str, _RecBook] = {}
        self.ltp: dict[str, str] = {}
        self.hints: dict[str, list[str]] = {}
        self.asset_market: dict[str, str] = {}
        self.resolved: set[str] = set()

    def learn(self, asset: Any, market: Any) -> None:
        if isinstance(asset, str) and isinstance(market, str):
            self.asset_market.setdefault(asset, market)

    def _set_book(self, o: dict[str, Any]) -> None:
        aid, market = o.get("asset_id"), o.get("market")
        if not isinstance(aid, str) or not isinstance(market, str):
            return
        b = self.books.get(aid) or _RecBook(market)
        b.bids = {to_units(lv["price"]): to_units(lv["size"]) for lv in o.get("bids", [])}
        b.asks = {to_units(lv["price"]): to_units(lv["size"]) for lv in o.get("asks", [])}
        b.ts, b.hash, b.dirty = str(o.get("timestamp", "")), str(o.get("hash", "")), True
        if isinstance(o.get("tick_size"), str):
            b.tick = o["tick_size"]
        if isinstance(o.get("version"), str):
            b.version = o["version"]
        self.books[aid] = b
        self.learn(aid, market)
        if isinstance(o.get("last_trade_price"), str):
            self.ltp[market] = o["last_trade_price"]
        elif b.hash:  # a trade-triggered book: hashed with the market's new last trade price
            found = _search_ltp(market, aid, b, self.hints.get(market, []))
            if found is not None:
                self.ltp[market] = found

    def apply(self, obj: Any) -> None:
        try:
            self._apply(obj)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.debug("sim replay: frame not applied to the state ({})", exc)

    def _apply(self, obj: Any) -> None:
        if isinstance(obj, list):
            for o in obj:
                if isinstance(o, dict) and o.get("event_type") == "book":
                    self._set_book(o)
            return
        if not isinstance(obj, dict):
            return
        ev, market = obj.get("event_type"), obj.get("market")
        if ev == "book":
            self._set_book(obj)
        elif ev == "price_change":
            for e in obj.get("price_changes", []):
                self.learn(e.get("asset_id"), market)
                b = self.books.get(e.get("asset_id"))
                if b is None:
                    continue
                side = b.bids if e["side"] == "BUY" else b.asks
                p, s = to_units(e["price"]), to_units(e["size"])
                if s > 0:
                    side[p] = s
                else:
                    side.pop(p, None)
                b.ts, b.hash, b.dirty = str(obj.get("timestamp", "")), str(e.get("hash", "")), True
        elif ev == "tick_size_change":
            self.learn(obj.get("asset_id"), market)
            b = self.books.get(obj.get("asset_id"))
            if b is not None:
                b.tick, b.dirty = str(obj["new_tick_size"]), True
        elif ev == "last_trade_price":
            self.learn(obj.get("asset_id"), market)
            p = to_units(obj["price"])
            self.hints[market] = [ltp_str(p), ltp_str(ONE - p)]
        elif ev in ("new_market", "market_resolved"):
            for a in obj.get("assets_ids") or []:
                self.learn(a, market)
            if ev == "market_resolved" and isinstance(market, str):
                self.resolved.add(market)
        elif ev == "best_bid_ask":
            self.learn(obj.get("asset_id"), market)

    def book(self, asset: str) -> dict[str, Any] | None:
        b = self.books.get(asset)
        if b is None:
            return None
        bw, aw = _wire(b.bids, b.asks)
        ltp = self.ltp.get(b.market, "")

        def h(v: str) -> str:
            return book_hash_wire(b.market, asset, b.ts, bw, aw, MIN_ORDER_SIZE, b.tick, False, v, b.version)

        got = h(ltp)
        if b.dirty and got != b.hash and b.hash:
            # the recorded hash used another last trade price (a print, or one we have not seen)
            found = _search_ltp(b.market, asset, b, self.hints.get(b.market, []))
            if found is not None:
                self.ltp[b.market], ltp, got = found, found, b.hash
        b.dirty = False
        out = {"market": b.market, "asset_id": asset, "timestamp": b.ts, "hash": got, "bids": _levels(bw),
               "asks": _levels(aw), "min_order_size": MIN_ORDER_SIZE, "tick_size": b.tick,
               "neg_risk": False, "last_trade_price": ltp}  # fmt: skip
        if b.version:
            out["version"] = b.version
        return out

    def top(self, asset: str) -> tuple[int | None, int | None]:
        b = self.books.get(asset)
        if b is None:
            return None, None
        return (max(b.bids) if b.bids else None, min(b.asks) if b.asks else None)


# ---------------------------------------------------------------------------------------------
# the server


class _Conn:
    __slots__ = ("ws", "transport", "assets", "custom", "queue", "task", "peer")

    def __init__(self, ws: web.WebSocketResponse, transport: Any, peer: str) -> None:
        self.ws = ws
        self.transport = transport
        self.peer = peer
        self.assets: set[str] = set()
        self.custom = False
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None


class SimServer:
    """The simulator. ``await start()`` (or ``async with``), then connect to :attr:`ws_url`."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = cfg = config or SimConfig()
        self._clock_offset_ns = 0  # advance() moves the simulator's time forward by this much
        self._clock: Callable[[], int] = self._now
        seed = cfg.seed
        self._rng = random.Random(f"polybot-sim/{seed}/walk")
        self._ids = random.Random(f"polybot-sim/{seed}/ids")
        self._trng = random.Random(f"polybot-sim/{seed}/timing")
        self._base_tick = TICKS[cfg.tick_size]
        self._markets: list[_Market] = []
        self._by_cid: dict[str, _Market] = {}
        self._by_asset: dict[str, _Market] = {}
        self._last_ts = 0
        self._conns: set[_Conn] = set()
        self._paused = False
        self._frozen_until = 0.0
        self._freeze_drop = False
        self._pending: list[tuple[int, str, str]] = []  # deferred (delay ms, market, frame)
        self._out: list[str] | None = None  # frames of the current step() call
        self.frames_sent = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._replay: _Replay | None = None
        if cfg.recording:
            self._replay = _Replay(load_recording(cfg.recording))
            logger.info("sim: {} frames from {}", len(self._replay.frames), cfg.recording)
        else:
            for _ in range(cfg.n_markets):
                self._new_market()
        self.exchange = SimExchange(self, cfg)
        self.chain = SimChain(cfg.chain_id, block_time_s=cfg.chain_block_s, server=self,
                              default_pol=to_units(str(cfg.chain_pol)) * 10**12)  # fmt: skip
        self.sports: SimSports | None = None
        if cfg.sports:
            from .simsports import SimSports

            self.sports = SimSports(self, cfg)
        self.series: SimSeries | None = None
        if cfg.series:
            from .simseries import SimSeries as _SimSeries

            self.series = _SimSeries(self, cfg)

    def _now(self) -> int:
        """The simulator's time (ns): ``SimConfig.clock`` plus what :meth:`advance` added."""
        return int(self.config.clock()) + self._clock_offset_ns

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("SimServer already started")
        app = web.Application()
        r = app.router
        r.add_get(WS_PATH, self._ws_handler)
        r.add_get("/book", self._h_book)
        r.add_post("/books", self._h_books)
        r.add_get("/tick-size", self._h_tick_size)
        r.add_get("/neg-risk", self._h_neg_risk)
        r.add_get("/time", self._h_time)
        r.add_get("/ok", self._h_ok)
        r.add_get("/markets/keyset", self._h_markets_keyset)
        r.add_get("/markets", self._h_markets)
        r.add_get("/markets/{id}", self._h_market_one)
        r.add_get("/events/keyset", self._h_events_keyset)
        r.add_get("/events", self._h_events)
        r.add_get("/events/{id}", self._h_event_one)
        r.add_get("/series", self._h_series)
        r.add_route("*", "/_sim/{action}", self._h_control)
        self.exchange.add_routes(r)
        self.chain.add_routes(r)  # /rpc (JSON-RPC), /rpc/_chain/<control>, /relayer/...
        if self.sports is not None:
            self.sports.add_routes(r)
        r.add_get("/", self._h_index)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self.exchange.start()
        if self.sports is not None:
            self.sports.start(self.config.autostart)
        if self.series is not None:
            self.series.start(self.config.autostart)
        if self.config.autostart:
            loop = self._replay_loop() if self._replay is not None else self._walk_loop()
            self._task = asyncio.get_running_loop().create_task(loop)
        logger.info("sim listening on {}", self.rest_url)

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self.sports is not None:
            await self.sports.stop()
        if self.series is not None:
            await self.series.stop()
        await self.exchange.stop()
        for c in list(self._conns):
            try:
                await asyncio.wait_for(c.ws.close(code=1001, message=b"server shutdown"), 0.5)
            except (TimeoutError, Exception):  # noqa: BLE001
                self._abort(c)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SimServer not started")
        return self._port

    @property
    def rest_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def gamma_url(self) -> str:
        return self.rest_url

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{WS_PATH}"

    @property
    def rpc_url(self) -> str:
        """The fake chain's JSON-RPC endpoint (its controls: ``{rpc_url}/_chain/<action>``)."""
        return f"{self.rest_url}/rpc"

    @property
    def relayer_url(self) -> str:
        return f"{self.rest_url}/relayer"

    @property
    def user_ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/ws/user"

    @property
    def sports_ws_url(self) -> str:
        """The score feed (``SimConfig.sports``)."""
        return f"ws://{self.config.host}:{self.port}/ws/sports"

    @property
    def odds_url(self) -> str:
        """The Odds API base URL (``SimConfig.sports``): ``{odds_url}/v4/sports/{sport}/odds``."""
        return self.rest_url

    @property
    def markets(self) -> list[dict[str, Any]]:
        """``[{"condition_id","yes","no","slug","gamma_id","tick_size","resolved"}]``."""
        return [{"condition_id": m.cid, "yes": m.yes, "no": m.no, "slug": m.slug, "gamma_id": m.gamma_id,
                 "tick_size": m.tick_str, "resolved": m.resolved} for m in self._all_markets()]  # fmt: skip

    # -- markets -----------------------------------------------------------------------------

    def _new_market(self) -> _Market:
        ids, rng = self._ids, self._rng
        idx = len(self._markets)
        cid = f"0x{ids.getrandbits(256):064x}"
        yes, no = (str(ids.randrange(10**76, 2**256)) for _ in range(2))
        qid = f"0x{ids.getrandbits(256):064x}"
        m = _Market(idx, cid, yes, no, qid, self._base_tick, self._clock())
        m.neg_risk = self.config.neg_risk
        t, L = m.tick, self.config.levels
        bb = rng.randint(25, 75) * CENT // t * t
        ba = bb + t * rng.choice((1, 1, 2))
        p = bb
        for depth in range(L):
            if p < t:
                break
            m.bids[p] = self._rand_size(depth)
            p -= t * (2 if rng.random() < 0.15 else 1)
        p = ba
        for depth in range(L):
            if p > ONE - t:
                break
            m.asks[p] = self._rand_size(depth)
            p += t * (2 if rng.random() < 0.15 else 1)
        if rng.random() < 0.5:
            m.ltp = ltp_str(rng.choice((bb, ba)))
        m.last_top = m.yes_top()
        self._register_market(m)
        return m

    def _register_market(self, m: _Market) -> None:
        """Make ``m`` (index ``len(markets)``) known to REST, Gamma, the channels and the exchange."""
        self._markets.append(m)
        self._by_cid[m.cid] = m
        self._by_asset[m.yes] = self._by_asset[m.no] = m

    def _rand_size(self, depth: int = 0) -> int:
        x = self._rng.lognormvariate(4.0 + 0.15 * depth, 1.1)
        cents = max(500, int(x * 100))
        if self._rng.random() < 0.4:
            cents = cents // 100 * 100
        return cents * CENT

    def _all_markets(self) -> list[_Market]:
        if self._replay is not None:
            self._sync_replay_markets()
        return self._markets

    def _sync_replay_markets(self) -> None:
        """Gamma view of a recording: markets whose two tokens were seen, in order of appearance."""
        rp = self._replay
        assert rp is not None
        by_market: dict[str, list[str]] = {}
        for a, mk in rp.asset_market.items():
            by_market.setdefault(mk, []).append(a)
        for mk, assets in by_market.items():
            if mk in self._by_cid or len(assets) < 2:
                continue
            m = _Market(len(self._markets), mk, assets[0], assets[1], "0x" + "0" * 64, TICKS["0.01"], self._clock())
            m.slug = f"rec-market-{m.idx}"
            self._markets.append(m)
            self._by_cid[mk] = m
        for m in self._markets:
            m.resolved = m.cid in rp.resolved
            b = rp.books.get(m.yes) or rp.books.get(m.no)
            if b is not None:
                m.tick = to_units(b.tick)
            m.ltp = rp.ltp.get(m.cid, "")

    def _find(self, sel: Any) -> _Market:
        """A market by index, condition id, slug, Gamma id or token id (None: the first open one)."""
        ms = self._all_markets()
        if sel is None or sel == "":
            for m in ms:
                if not m.resolved:
                    return m
            raise ValueError("no open market")
        s = str(sel)
        for m in ms:
            if s in (m.cid, m.slug, m.gamma_id, m.yes, m.no):
                return m
        if s.isdigit() and int(s) < len(ms):
            return ms[int(s)]
        raise ValueError(f"unknown market {sel!r}")

    def _top(self, asset: str) -> tuple[int | None, int | None]:
        if self._replay is not None:
            return self._replay.top(asset)
        m = self._by_asset.get(asset)
        return m.top(asset) if m is not None else (None, None)

    def book(self, asset: str) -> dict[str, Any] | None:
        """The REST ``/book`` answer for a token (None: no order book)."""
        if self._replay is not None:
            return self._replay.book(asset)
        m = self._by_asset.get(asset)
        if m is None or m.resolved:
            return None
        return m.book(asset)

    def _market_assets(self, cid: str) -> tuple[str, ...]:
        if self._replay is not None:
            return tuple(a for a, mk in self._replay.asset_market.items() if mk == cid)
        m = self._by_cid.get(cid)
        return m.assets if m is not None else ()

    # -- sending ---------------------------------------------------------------------------

    def _frozen(self) -> bool:
        return self._frozen_until > time.monotonic()

    def _deliver(self, c: _Conn, text: str) -> None:
        if self._freeze_drop and self._frozen():
            return
        c.queue.put_nowait(text)
        self.frames_sent += 1

    def _emit(self, cid: str | None, text: str, custom: bool = False, everyone: bool = False) -> None:
        """Send a frame to the connections subscribed to market ``cid`` (or to all: ``everyone``);
        ``custom``: only to connections that enabled the custom features."""
        if self._out is not None:
            self._out.append(text)
        assets = set(self._market_assets(cid)) if cid is not None else set()
        for c in list(self._conns):
            if custom and not c.custom:
                continue
            if everyone or (assets and not c.assets.isdisjoint(assets)):
                self._deliver(c, text)

    async def _writer(self, c: _Conn) -> None:
        try:
            while True:
                text = await c.queue.get()
                while (wait := self._frozen_until - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                await c.ws.send_str(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            logger.debug("sim: writer for {} stopped: {!r}", c.peer, exc)

    def _abort(self, c: _Conn) -> None:
        if c.task is not None:
            c.task.cancel()
        if c.transport is not None:
            c.transport.abort()  # no close frame: the client sees 1006

    # -- WebSocket ---------------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        transport = request.transport
        ws = web.WebSocketResponse(max_msg_size=1 << 22)
        await ws.prepare(request)
        c = _Conn(ws, transport, str(request.remote))
        c.task = asyncio.get_running_loop().create_task(self._writer(c))
        self._conns.add(c)
        logger.debug("sim: ws connection from {}", c.peer)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        self._on_text(c, msg.data)
                    except Exception as exc:  # noqa: BLE001 - never crash on client input
                        logger.warning("sim: ignored client message {!r}: {!r}", msg.data[:200], exc)
                elif msg.type == WSMsgType.BINARY:
                    logger.warning("sim: ignored a binary frame from {}", c.peer)
        except Exception as exc:  # noqa: BLE001
            logger.debug("sim: ws {} ended: {!r}", c.peer, exc)
        finally:
            self._conns.discard(c)
            if c.task is not None:
                c.task.cancel()
        return ws

    def _on_text(self, c: _Conn, data: str) -> None:
        if data == "PING":
            if not self._frozen():
                c.queue.put_nowait("PONG")
            return
        try:
            obj = json.loads(data)
        except ValueError:
            logger.warning("sim: ignored a non-JSON message from {}: {!r}", c.peer, data[:200])
            return
        if not isinstance(obj, dict):
            logger.warning("sim: ignored a message that is not an object: {!r}", data[:200])
            return
        ids = obj.get("assets_ids", [])
        if not isinstance(ids, list):
            logger.warning("sim: ignored a message with bad assets_ids: {!r}", data[:200])
            return
        ids = [a for a in ids if isinstance(a, str)]
        if "custom_feature_enabled" in obj:
            c.custom = bool(obj["custom_feature_enabled"])
        op = obj.get("operation")
        if op is None:
            if str(obj.get("type", "")).lower() != "market":
                logger.warning("sim: ignored a message without operation or type market: {!r}", data[:200])
                return
            op = "subscribe"
        if op == "subscribe":
            c.assets.update(ids)
            if obj.get("initial_dump", True) is not False:
                dump = self._dump_frame(ids)
                if dump is not None:
                    self._deliver(c, dump)
        elif op == "unsubscribe":
            c.assets.difference_update(ids)
        else:
            logger.warning("sim: ignored unknown operation {!r}", op)

    def _dump_frame(self, ids: Iterable[str]) -> str | None:
        books = []
        for a in dict.fromkeys(ids):
            b = self.book(a)
            if b is None:
                continue
            books.append({"market": b["market"], "asset_id": a, "timestamp": b["timestamp"], "hash": b["hash"],
                          "bids": b["bids"], "asks": b["asks"], "tick_size": b["tick_size"], "event_type": "book",
                          "last_trade_price": b["last_trade_price"]})  # fmt: skip
            if "version" in b:
                books[-1]["version"] = b["version"]
        return _compact(books) + "\n" if books else None

    # -- the walk ----------------------------------------------------------------------------

    def _next_ts(self) -> int:
        ts = max(self._clock() // 1_000_000, self._last_ts + 1)
        self._last_ts = ts
        return ts

    def step(self, n: int = 1) -> list[str]:
        """Advance the walk (or the replay) by ``n`` events now; returns the frames produced."""
        out: list[str] = []
        self._out = out
        try:
            self._flush_pending()
            for _ in range(n):
                if self._replay is not None:
                    if not self._replay_one():
                        break
                else:
                    self._walk_event()
                    self._flush_pending()
        finally:
            self._out = None
        return out

    def _flush_pending(self) -> None:
        while self._pending:
            _, cid, text = self._pending.pop(0)
            self._emit(cid, text)

    async def _walk_loop(self) -> None:
        rate = self.config.rate
        if rate <= 0:
            return
        while True:
            await asyncio.sleep(self._trng.expovariate(rate))
            if self._paused:
                continue
            try:
                self._walk_event()
            except Exception:  # noqa: BLE001 - a bug in one event must not stop the demo
                logger.exception("sim: walk event failed")
            while self._pending:
                await asyncio.sleep(self._pending[0][0] / 1000)
                if self._pending:
                    _, cid, text = self._pending.pop(0)
                    self._emit(cid, text)

    def _walk_event(self) -> None:
        active = [m for m in self._markets if not m.resolved and m.sports is None]  # sports: their own game
        if not active:
            return
        rng, cfg = self._rng, self.config
        m = active[rng.randrange(len(active))]
        r = rng.random()
        done = False
        if r < cfg.trade_prob:
            done = self._trade(m, None)
        elif r < cfg.trade_prob + cfg.tick_change_prob:
            done = self._tick_change(m, None)
            m.auto_tick = m.tick == self._base_tick  # a spontaneous 0.001 stays until toggled back
        if not done:
            self._batch(m, split=rng.random() < cfg.split_prob)
        self._auto_tick(m)
        self.exchange.on_walk(m)

    def _apply(self, m: _Market, side: int, price: int, size: int) -> None:
        book = m.bids if side == BID else m.asks
        if size > 0:
            book[price] = size
        else:
            book.pop(price, None)

    def _pick_change(self, m: _Market, touched: set[tuple[int, int]]) -> tuple[int, int, int] | None:
        """One level change on the YES book (applied), touching a level not yet touched."""
        rng, t, L = self._rng, m.tick, self.config.levels
        for _ in range(10):
            bb, ba = max(m.bids), min(m.asks)
            side = BID if rng.random() < 0.5 else ASK
            book = m.bids if side == BID else m.asks
            r = rng.random()
            ch: tuple[int, int, int] | None = None
            if len(book) < L and r < 0.5:
                ch = self._deep_add(m, side)
            elif len(book) > L + 4 and r < 0.5:
                worst = min(book) if side == BID else max(book)
                ch = (side, worst, 0)
            elif r < 0.3:  # move the top: the walk
                mid = (bb + ba) / 2 / ONE
                up = rng.random() < min(0.85, max(0.15, 0.5 + 0.5 * (0.5 - mid)))
                gap = (ba - bb) // t
                if up and gap > 1:
                    ch = (BID, bb + t * rng.randint(1, min(2, gap - 1)), self._rand_size())
                elif up and len(m.asks) > 3:
                    ch = (ASK, ba, 0)
                elif not up and gap > 1:
                    ch = (ASK, ba - t * rng.randint(1, min(2, gap - 1)), self._rand_size())
                elif not up and len(m.bids) > 3:
                    ch = (BID, bb, 0)
            elif r < 0.75:  # resize a level near the top
                near = sorted(book, reverse=(side == BID))[:8]
                p = near[min(int(rng.expovariate(0.4)), len(near) - 1)]
                old = book[p]
                delta = self._rand_size() // 2 // CENT * CENT or CENT
                new = old + delta if rng.random() < 0.5 or old - delta < 5 * ONE else old - delta
                ch = (side, p, new)
            elif r < 0.88:
                ch = self._deep_add(m, side)
            elif len(book) > 4:  # cancel a level behind the top
                p = rng.choice(sorted(book, reverse=(side == BID))[1:])
                ch = (side, p, 0)
            if ch is None or (ch[0], ch[1]) in touched:
                continue
            touched.add((ch[0], ch[1]))
            self._apply(m, *ch)
            return ch
        return None

    def _deep_add(self, m: _Market, side: int) -> tuple[int, int, int] | None:
        t, L = m.tick, self.config.levels
        if side == BID:
            top = max(m.bids)
            cands = [p for p in range(top - t, max(t, top - (L + 3) * t) - 1, -t) if p not in m.bids]
        else:
            top = min(m.asks)
            cands = [p for p in range(top + t, min(ONE - t, top + (L + 3) * t) + 1, t) if p not in m.asks]
        if not cands:
            return None
        p = self._rng.choice(cands)
        return (side, p, self._rand_size(abs(p - top) // t))

    def _entries(self, m: _Market, side: int, price: int, size: int) -> list[dict[str, Any]]:
        """The YES entry and its mirrored NO entry for one applied change, in a seeded order."""
        bb, ba = m.yes_top()
        s = from_units(size)
        yb, ya = _top_str(bb, ba)
        nb, na = _top_str(ONE - ba if ba is not None else None, ONE - bb if bb is not None else None)
        yes = {"asset_id": m.yes, "price": from_units(price), "size": s, "side": "BUY" if side == BID else "SELL",
               "hash": "", "best_bid": yb, "best_ask": ya}  # fmt: skip
        no = {"asset_id": m.no, "price": from_units(ONE - price), "size": s, "side": "SELL" if side == BID else "BUY",
              "hash": "", "best_bid": nb, "best_ask": na}  # fmt: skip
        return [yes, no] if self._rng.random() < 0.5 else [no, yes]

    def _batch(self, m: _Market, split: bool, changes: list[tuple[int, int, int]] | None = None) -> bool:
        """One price_change batch (one timestamp). ``changes`` given: apply those (no walk)."""
        rng = self._rng
        groups: list[list[dict[str, Any]]] = []
        if changes is None:
            k = 1 if rng.random() < 0.6 else rng.randint(2, 5)
            if split:
                k = max(k, rng.randint(2, 6))
            touched: set[tuple[int, int]] = set()
            for _ in range(k):
                ch = self._pick_change(m, touched)
                if ch is not None:
                    groups.append(self._entries(m, *ch))
        else:
            for ch in changes:
                self._apply(m, *ch)
                groups.append(self._entries(m, *ch))
        if not groups:
            return False
        ts = str(self._next_ts())
        m.ts = ts
        hashes = {a: m.book(a)["hash"] for a in m.assets}
        for g in groups:
            for e in g:
                e["hash"] = hashes[e["asset_id"]]
        chunks = [groups]
        if split and len(groups) >= 2:
            n = min(len(groups), rng.randint(2, 3))
            cuts = sorted(rng.sample(range(1, len(groups)), n - 1))
            chunks = [groups[i:j] for i, j in zip([0, *cuts], [*cuts, len(groups)], strict=True)]
        for ch in chunks:
            self._emit(m.cid, _spaced({"market": m.cid, "price_changes": [e for g in ch for e in g],
                                       "timestamp": ts, "event_type": "price_change"}))  # fmt: skip
        self._best_bid_ask(m, ts)
        return True

    def _best_bid_ask(self, m: _Market, ts: str) -> None:
        top = m.yes_top()
        if top == m.last_top:
            return
        m.last_top = top
        for a in m.assets:
            bb, ba = m.top(a)
            spread = from_units(ba - bb) if bb is not None and ba is not None else ""
            b, s = _top_str(bb, ba)
            self._emit(m.cid, _spaced({"market": m.cid, "asset_id": a, "best_bid": b, "best_ask": s, "spread": spread,
                                       "timestamp": ts, "event_type": "best_bid_ask"}), custom=True)  # fmt: skip

    def _trade(self, m: _Market, taker: str | None) -> bool:
        """A taker crosses the top: trade-triggered books for both tokens, then a print."""
        rng = self._rng
        if taker is None:
            bb, ba = m.yes_top()
            mid = ((bb or 0) + (ba or ONE)) / 2 / ONE
            taker = "BUY" if rng.random() < min(0.85, max(0.15, 0.5 + 0.5 * (0.5 - mid))) else "SELL"
        book = m.asks if taker == "BUY" else m.bids
        p = min(book) if taker == "BUY" else max(book)
        s = book[p]
        cents = s // CENT
        if len(book) > 3 and (cents < 2 or rng.random() < 0.35):
            q = s
            del book[p]
        elif cents >= 2:
            q = rng.randint(1, cents - 1) * CENT
            book[p] = s - q
        else:
            return False
        ts = self._next_ts()
        m.ts = str(ts)
        m.ltp = ltp_str(p) if rng.random() < 0.5 else ltp_str(ONE - p)  # in terms of one of the tokens
        order = list(m.assets) if rng.random() < 0.5 else list(reversed(m.assets))
        for a in order:
            b = m.book(a)
            self._emit(m.cid, _spaced({"market": m.cid, "asset_id": a, "bids": b["bids"], "asks": b["asks"],
                                       "hash": b["hash"], "timestamp": m.ts, "event_type": "book"}))  # fmt: skip
        self._best_bid_ask(m, m.ts)
        if rng.random() < 0.5:
            asset, price, side = m.yes, p, taker
        else:
            asset, price, side = m.no, ONE - p, ("SELL" if taker == "BUY" else "BUY")
        delay = rng.randint(3, 40)
        self._last_ts = max(self._last_ts, ts + delay)
        txh = f"0x{rng.getrandbits(256):064x}"
        self._pending.append((delay, m.cid, _spaced({
            "market": m.cid, "asset_id": asset, "price": from_units(price), "size": from_units(q),
            "fee_rate_bps": "0", "side": side, "timestamp": str(ts + delay), "event_type": "last_trade_price",
            "transaction_hash": txh})))  # fmt: skip
        return True

    def _tick_change(self, m: _Market, new: int | None) -> bool:
        old = m.tick
        new = new if new is not None else (1_000 if old == 10_000 else 10_000)
        if new == old:
            return False
        if new > old:  # coarser: move off-grid levels onto the grid first (bids down, asks up)
            changes: list[tuple[int, int, int]] = []
            for side, book in ((BID, m.bids), (ASK, m.asks)):
                agg: dict[int, int] = {}
                for p in sorted(book):
                    r = p % new
                    if not r:
                        continue
                    changes.append((side, p, 0))
                    q = p - r if side == BID else p + (new - r)
                    if new <= q <= ONE - new:
                        agg[q] = agg.get(q, book.get(q, 0)) + book[p]
                changes += [(side, q, s) for q, s in sorted(agg.items())]
            if changes:
                self._batch(m, split=False, changes=changes)
            if not m.bids and (not m.asks or min(m.asks) > new):
                self._batch(m, split=False, changes=[(BID, new, 100 * ONE)])
            if not m.asks and (not m.bids or max(m.bids) < ONE - new):
                self._batch(m, split=False, changes=[(ASK, ONE - new, 100 * ONE)])
        ts = str(self._next_ts())
        old_s, new_s = from_units(old), from_units(new)
        m.tick, m.ts = new, ts
        for a in m.assets:
            self._emit(m.cid, _spaced({"asset_id": a, "event_type": "tick_size_change", "market": m.cid,
                                       "new_tick_size": new_s, "old_tick_size": old_s, "timestamp": ts}))  # fmt: skip
        logger.debug("sim: {} tick size {} -> {}", m.slug, old_s, new_s)
        return True

    def _auto_tick(self, m: _Market) -> None:
        """0.01 -> 0.001 when the top leaves [0.04, 0.96]; back when it is well inside again."""
        if self._base_tick != 10_000 or not m.auto_tick or m.resolved:
            return
        bb, ba = m.yes_top()
        if bb is None or ba is None:
            return
        if m.tick == 10_000 and (bb > 960_000 or ba < 40_000):
            self._tick_change(m, 1_000)
        elif m.tick == 1_000 and bb >= 100_000 and ba <= 900_000:
            self._tick_change(m, 10_000)

    # -- replay ------------------------------------------------------------------------------

    def _replay_one(self) -> bool:
        rp = self._replay
        assert rp is not None
        if rp.pos >= len(rp.frames):
            return False
        _, text, obj = rp.frames[rp.pos]
        rp.pos += 1
        rp.apply(obj)
        self._route_recorded(text, obj)
        return True

    def _route_recorded(self, text: str, obj: Any) -> None:
        rp = self._replay
        assert rp is not None
        if self._out is not None:
            self._out.append(text)
        if isinstance(obj, list):  # a recorded dump: each client gets the books it subscribed to
            for c in list(self._conns):
                mine = [o for o in obj if isinstance(o, dict) and o.get("asset_id") in c.assets]
                if not mine:
                    continue
                if len(mine) == len(obj):
                    self._deliver(c, text if text.endswith("\n") else text + "\n")
                else:
                    self._deliver(c, _compact(mine) + "\n")
            return
        if not isinstance(obj, dict):
            logger.debug("sim replay: skipped an unparseable frame {!r}", text[:100])
            return
        ev = obj.get("event_type")
        market = obj.get("market")
        if ev == "new_market":
            targets = [c for c in self._conns if c.custom]
        else:
            assets = set(self._market_assets(market)) if isinstance(market, str) else set()
            if isinstance(obj.get("asset_id"), str):
                assets.add(obj["asset_id"])
            custom = ev in ("best_bid_ask", "market_resolved")
            targets = [c for c in self._conns if not c.assets.isdisjoint(assets) and (c.custom or not custom)]
        for c in targets:
            self._deliver(c, text)

    async def _replay_loop(self) -> None:
        rp = self._replay
        assert rp is not None
        speed = self.config.speed
        start = time.monotonic()
        first = rp.frames[rp.pos][0] if rp.pos < len(rp.frames) else 0
        paused_for = 0.0
        while rp.pos < len(rp.frames):
            if self._paused:
                t0 = time.monotonic()
                while self._paused:
                    await asyncio.sleep(0.05)
                paused_for += time.monotonic() - t0
            if speed > 0:
                due = start + paused_for + (rp.frames[rp.pos][0] - first) / 1e9 / speed
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue  # re-check pause and position after sleeping
            else:
                await asyncio.sleep(0)
            self._replay_one()
        logger.info("sim: recording finished ({} frames); serving the last state", len(rp.frames))

    # -- faults and control ------------------------------------------------------------------

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def drop(self) -> int:
        """Close every WebSocket connection abruptly (no close frame)."""
        n = 0
        for c in list(self._conns):
            self._abort(c)
            self._conns.discard(c)
            n += 1
        logger.info("sim: dropped {} connections", n)
        return n

    def freeze(self, seconds: float, drop: bool = False) -> None:
        """For ``seconds`` send nothing and answer no PING (sockets stay open). Frames produced
        meanwhile are held and sent afterwards, or discarded with ``drop``."""
        self._frozen_until = time.monotonic() + max(0.0, float(seconds))
        self._freeze_drop = bool(drop)
        logger.info("sim: frozen for {} s{}", seconds, " (dropping frames)" if drop else "")

    def malformed(self, kind: str = "json", market: Any = None) -> str:
        """Send one malformed frame to the market's subscribers: ``json`` (not valid JSON),
        ``price`` (a price_change with price "1.5") or ``event_type`` (an unknown event type)."""
        m = self._find(market)
        ts = str(self._next_ts())
        bb, ba = _top_str(*m.top(m.yes))
        if kind == "json":
            text = '{"market":"%s", "price_changes":[{"asset_id":"%s", "price":"0.5", "size":' % (m.cid, m.yes)
        elif kind == "price":
            text = _spaced({"market": m.cid, "price_changes": [{"asset_id": m.yes, "price": "1.5", "size": "10",
                            "side": "BUY", "hash": hashlib.sha1(ts.encode()).hexdigest(), "best_bid": bb,
                            "best_ask": ba}], "timestamp": ts, "event_type": "price_change"})  # fmt: skip
        elif kind == "event_type":
            text = _spaced({"market": m.cid, "asset_id": m.yes, "timestamp": ts, "event_type": "sim_unknown_event"})
        else:
            raise ValueError(f"unknown malformed kind {kind!r} (json, price, event_type)")
        self._emit(m.cid, text)
        return text

    def crossed(self, market: Any = None) -> str:
        """Send a bogus price_change that would cross a client's book (a YES bid above the best
        ask) with a hash that cannot verify; the server's own book is unchanged."""
        m = self._walk_market(market)
        bb, ba = m.yes_top()
        assert ba is not None
        p = min(ba + m.tick, ONE - m.tick)
        size = "1234.56"
        ts = str(self._next_ts())
        bogus = hashlib.sha1(f"crossed/{m.cid}/{ts}".encode()).hexdigest()
        text = _spaced({"market": m.cid, "price_changes": [
            {"asset_id": m.yes, "price": from_units(p), "size": size, "side": "BUY", "hash": bogus,
             "best_bid": from_units(p), "best_ask": from_units(ba)},
            {"asset_id": m.no, "price": from_units(ONE - p), "size": size, "side": "SELL", "hash": bogus,
             "best_bid": from_units(ONE - ba), "best_ask": from_units(ONE - p)}],
            "timestamp": ts, "event_type": "price_change"})  # fmt: skip
        self._emit(m.cid, text)
        return text

    def tick_size(self, market: Any = None, tick: str | None = None) -> str:
        """Force a tick-size change (``tick`` "0.01"/"0.001"; None toggles); returns the new tick."""
        m = self._walk_market(market)
        if tick is not None and tick not in TICKS:
            raise ValueError(f"tick must be one of {sorted(TICKS)}")
        self._flush_pending()
        self._tick_change(m, TICKS[tick] if tick else None)
        m.auto_tick = False
        return m.tick_str

    def trade(self, market: Any = None, side: str | None = None) -> bool:
        """Force a trade now (``side`` = the taker's side on the YES token, BUY or SELL)."""
        m = self._walk_market(market)
        if side is not None and side not in ("BUY", "SELL"):
            raise ValueError("side must be BUY or SELL")
        self._flush_pending()
        ok = self._trade(m, side)
        self._flush_pending()
        return ok

    def resolve(self, market: Any = None, winner: Any = None) -> dict[str, Any]:
        """Resolve a market (``winner``: "yes"/"no"/0/1/a token id/an outcome name; default the
        first outcome): sends ``market_resolved``; Gamma shows it closed and ``/book`` answers 404
        from then on."""
        m = self._walk_market(market)
        w = str(winner).lower() if winner is not None else "yes"
        win = m.no if w in ("no", "1", m.no, m.outcomes[1].lower()) else m.yes
        m.resolved, m.winner = True, win
        self.chain.report_market(m.cid, 0 if win == m.yes else 1)  # the condition's payouts on chain
        ts = str(self._next_ts())
        frame = {"id": m.gamma_id, "market": m.cid, "assets_ids": [m.yes, m.no], "winning_asset_id": win,
                 "winning_outcome": m.outcomes[0] if win == m.yes else m.outcomes[1], "event_message": None,
                 "timestamp": ts, "event_type": "market_resolved", "tags": ["Sim"]}  # fmt: skip
        self._emit(m.cid, _spaced(frame), custom=True)
        logger.info("sim: {} resolved to {}", m.slug, frame["winning_outcome"])
        return frame

    def add_market(self) -> dict[str, Any]:
        """Create a market and broadcast ``new_market`` to custom-feature connections."""
        if self._replay is not None:
            raise ValueError("add_market is not available while replaying a recording")
        m = self._new_market()
        self._announce_market(m)
        return {"condition_id": m.cid, "yes": m.yes, "no": m.no, "slug": m.slug}

    def _announce_market(self, m: _Market) -> None:
        """Broadcast ``new_market`` for ``m`` to custom-feature connections."""
        ts = str(self._next_ts())
        m.ts = ts
        g = self._gamma_market(m)
        frame = {"id": m.gamma_id, "question": m.question, "market": m.cid, "slug": m.slug,
                 "description": g["description"], "assets_ids": [m.yes, m.no], "outcomes": list(m.outcomes),
                 "event_message": {"id": str(800_000 + m.idx), "ticker": m.slug, "slug": m.slug, "title": m.question,
                                   "description": g["description"]},
                 "timestamp": ts, "event_type": "new_market", "tags": [], "condition_id": m.cid, "active": True,
                 "clob_token_ids": [m.yes, m.no], "sports_market_type": "", "line": "", "game_start_time": "",
                 "order_price_min_tick_size": m.tick_str, "group_item_title": "", "taker_base_fee": "0",
                 "fees_enabled": True, "fee_schedule": {"exponent": "1", "rate": "0.04", "taker_only": True,
                                                        "rebate_rate": "0.25"}}  # fmt: skip
        if self.sports is not None and m.sports is not None:
            frame = self.sports.new_market_fields(m, frame)
        self._emit(None, _compact(frame), custom=True, everyone=True)

    def _walk_market(self, sel: Any) -> _Market:
        if self._replay is not None:
            raise ValueError("this control is not available while replaying a recording")
        m = self._find(sel)
        if m.resolved:
            raise ValueError(f"market {m.slug} is resolved")
        return m

    def state(self) -> dict[str, Any]:
        """The server's view: per market and per asset the hash, top of book, tick, ltp."""
        assets: dict[str, Any] = {}
        markets = []
        for m in self._all_markets():
            markets.append({"market": m.cid, "slug": m.slug, "gamma_id": m.gamma_id, "yes": m.yes, "no": m.no,
                            "tick_size": m.tick_str, "last_trade_price": m.ltp, "resolved": m.resolved,
                            "winner": m.winner, "timestamp": m.ts})  # fmt: skip
        outcomes = {a: o for m in self._markets for a, o in zip(m.assets, m.outcomes, strict=True)}
        ids = list(self._replay.books) if self._replay is not None else list(outcomes)
        for a in ids:
            b = self.book(a)
            if b is None:
                continue
            bb, ba = _top_str(*self._top(a))
            assets[a] = {"market": b["market"], "outcome": outcomes.get(a, ""), "hash": b["hash"],
                         "timestamp": b["timestamp"], "best_bid": bb, "best_ask": ba, "tick_size": b["tick_size"],
                         "last_trade_price": b["last_trade_price"]}  # fmt: skip
        out = {"mode": "recording" if self._replay is not None else "walk", "paused": self._paused,
               "frozen": self._frozen(), "connections": len(self._conns), "frames_sent": self.frames_sent,
               "last_timestamp": str(self._last_ts), "markets": markets, "assets": assets}  # fmt: skip
        if self.sports is not None:
            out["sports"] = self.sports.state()
        if self.series is not None:
            out["series"] = self.series.state()
        return out

    # -- sports (SimConfig.sports) ----------------------------------------------------------------

    def sports_tick(self, now_ns: int | None = None) -> list[str]:
        """Advance the sports timeline to ``now_ns`` (default: the clock) now; returns the frames
        sent (score feed and market channel). Tests drive the game with it and ``autostart=False``."""
        if self.sports is None:
            raise ValueError("the simulator runs no game (SimConfig.sports is false)")
        return self.sports.advance(int(self._clock()) if now_ns is None else int(now_ns))

    def match_delay_s(self, m: _Market) -> int:
        """The matching delay of marketable orders on ``m`` now (Gamma ``secondsDelay`` while its game is live)."""
        return self.sports.match_delay_s(m) if self.sports is not None and m.sports is not None else 0

    # -- time and series (SimConfig.series) -----------------------------------------------------

    def advance(self, seconds: float) -> list[str]:
        """Move the simulator's time forward by ``seconds`` at once (REST, Gamma, frame timestamps,
        the exchange and the series all follow), then list and resolve the series windows due and
        catch the sports timeline up; returns the frames sent."""
        s = float(seconds)
        if not 0 <= s < 10 * 365 * 86_400:
            raise ValueError(f"seconds must be >= 0 (and below ten years), not {seconds!r}")
        self._clock_offset_ns += round(s * 1_000_000_000)
        now = self._clock()
        out = self.series.tick(now) if self.series is not None else []
        if self.sports is not None:
            out += self.sports.advance(now)
        return out

    def series_tick(self, now_ns: int | None = None) -> list[str]:
        """List the series windows due at ``now_ns`` (default: the clock) and resolve the ended
        ones now; returns the frames sent. :meth:`advance` calls it; so does the autostart task."""
        if self.series is None:
            raise ValueError("the simulator runs no series (SimConfig.series is empty)")
        return self.series.tick(int(self._clock()) if now_ns is None else int(now_ns))

    # -- HTTP handlers -------------------------------------------------------------------------

    @staticmethod
    def _json(obj: Any, status: int = 200) -> web.Response:
        return web.Response(text=_compact(obj), status=status, content_type="application/json")

    async def _h_index(self, request: web.Request) -> web.Response:
        out = {"sim": "polybot", "ws": self.ws_url, "rest": self.rest_url, "gamma": self.gamma_url,
               "markets": self.markets}  # fmt: skip
        if self.sports is not None:
            out["sports_ws"] = self.sports_ws_url
            out["odds"] = f"{self.odds_url}/v4/sports/{self.sports.league.sport_key}/odds"
        return self._json(out)

    async def _h_book(self, request: web.Request) -> web.Response:
        tok = request.query.get("token_id", "")
        if not tok:
            return self._json({"error": "Invalid token id"}, 400)
        b = self.book(tok)
        return self._json(b) if b is not None else self._json(NO_BOOK, 404)

    async def _h_books(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            toks = [x["token_id"] for x in body]
        except Exception:  # noqa: BLE001
            return self._json({"error": "Invalid payload"}, 400)
        if len(toks) > 500:
            return self._json({"error": "Payload exceeds the limit"}, 400)
        return self._json([b for t in toks if isinstance(t, str) and (b := self.book(t)) is not None])

    async def _h_tick_size(self, request: web.Request) -> web.Response:
        b = self.book(request.query.get("token_id", ""))
        if b is None:
            return self._json(NO_BOOK, 404)
        return self._json({"minimum_tick_size": float(b["tick_size"])})

    async def _h_neg_risk(self, request: web.Request) -> web.Response:
        b = self.book(request.query.get("token_id", ""))
        if b is None:
            return self._json(NO_BOOK, 404)
        return self._json({"neg_risk": b["neg_risk"]})

    async def _h_time(self, request: web.Request) -> web.Response:
        return self._json(self._clock() // 1_000_000_000)

    async def _h_ok(self, request: web.Request) -> web.Response:
        return self._json("OK")

    # Gamma

    def _gamma_market(self, m: _Market) -> dict[str, Any]:
        bb, ba = self._top(m.yes)
        mid = ((bb or 0) + (ba or ONE)) // 2
        if m.resolved:
            prices = ["1", "0"] if m.winner == m.yes else ["0", "1"]
        else:
            prices = [from_units(mid), from_units(ONE - mid)]
        end_ns = m.created_ns + 30 * 86_400 * 10**9
        desc = f"{m.question} A simulated market (polybot sim): resolves Yes or No on request."
        g = {
            "id": m.gamma_id, "question": m.question, "conditionId": m.cid, "slug": m.slug, "resolutionSource": "",
            "endDate": _iso(end_ns), "liquidity": "0", "startDate": _iso(m.created_ns), "description": desc,
            "outcomes": json.dumps(["Yes", "No"]), "outcomePrices": json.dumps(prices), "volume": "0",
            "active": True, "closed": m.resolved, "archived": False, "restricted": False, "new": False,
            "featured": False, "questionID": m.question_id, "enableOrderBook": True,
            "orderPriceMinTickSize": float(m.tick_str), "orderMinSize": 5, "endDateIso": _iso(end_ns)[:10],
            "startDateIso": _iso(m.created_ns)[:10], "clobTokenIds": json.dumps([m.yes, m.no]),
            "makerBaseFee": 0, "takerBaseFee": 0, "acceptingOrders": not m.resolved, "negRisk": m.neg_risk,
            "negRiskOther": False, "spread": (ba - bb) / ONE if bb is not None and ba is not None else 1.0,
            "lastTradePrice": float(m.ltp) if m.ltp else 0, "bestBid": (bb or 0) / ONE, "bestAsk": (ba or ONE) / ONE,
            "umaResolutionStatuses": "[]", "feesEnabled": True, "feeType": "sim_fees",
            "feeSchedule": dict(FEE_SCHEDULE), "version": "v1",
        }  # fmt: skip
        if self.series is not None and m.window is not None:
            return self.series.gamma_market(m, g)
        return self.sports.gamma_market(m, g) if self.sports is not None and m.sports is not None else g

    def _gamma_event(self, m: _Market) -> dict[str, Any]:
        g = self._gamma_market(m)
        ev = {"id": str(800_000 + m.idx), "ticker": m.slug, "slug": m.slug, "title": m.question,
              "description": g["description"], "startDate": g["startDate"], "endDate": g["endDate"],
              "active": True, "closed": m.resolved, "archived": False, "restricted": False,
              "enableOrderBook": True, "negRisk": m.neg_risk, "enableNegRisk": m.neg_risk,
              "negRiskAugmented": False,
              "markets": [g], "series": [], "tags": [], "version": "v1"}  # fmt: skip
        if self.series is not None and m.window is not None:
            return self.series.gamma_event(m, ev)
        return self.sports.gamma_event(m, ev) if self.sports is not None and m.sports is not None else ev

    @staticmethod
    def _multi(request: web.Request, name: str) -> set[str]:
        return {v for raw in request.query.getall(name, []) for v in raw.split(",") if v}

    @staticmethod
    def _flag(request: web.Request, name: str) -> bool | None:
        v = request.query.get(name)
        return None if v is None else v.lower() in ("true", "1")

    def _filter_markets(self, request: web.Request) -> list[_Market]:
        ids, slugs = self._multi(request, "id"), self._multi(request, "slug")
        cids, toks = self._multi(request, "condition_ids"), self._multi(request, "clob_token_ids")
        closed, active = self._flag(request, "closed"), self._flag(request, "active")
        out = []
        for m in self._all_markets():
            if (ids and m.gamma_id not in ids) or (slugs and m.slug not in slugs) or (cids and m.cid not in cids):
                continue
            if (toks and not toks.intersection(m.assets)) or (closed is not None and m.resolved != closed):
                continue
            if active is False:
                continue
            out.append(m)
        return out

    @staticmethod
    def _page(request: web.Request, items: list[Any], cap: int) -> tuple[list[Any], int]:
        try:
            limit = min(cap, max(1, int(request.query.get("limit", cap))))
            offset = max(0, int(request.query.get("offset", 0)))
            cur = request.query.get("after_cursor") or request.query.get("cursor")
            if cur:
                offset = int(base64.urlsafe_b64decode(cur.encode()).decode())
        except ValueError as exc:
            raise web.HTTPBadRequest(text=_compact({"error": f"bad paging: {exc}"}), content_type="application/json")
        return items[offset : offset + limit], offset + limit

    @staticmethod
    def _cursor(nxt: int) -> str:
        return base64.urlsafe_b64encode(str(nxt).encode()).decode()

    async def _h_markets(self, request: web.Request) -> web.Response:
        ms, _ = self._page(request, self._filter_markets(request), 500)
        return self._json([self._gamma_market(m) for m in ms])

    async def _h_markets_keyset(self, request: web.Request) -> web.Response:
        allm = self._filter_markets(request)
        ms, nxt = self._page(request, allm, 100)
        out: dict[str, Any] = {"markets": [self._gamma_market(m) for m in ms]}
        if nxt < len(allm):
            out["next_cursor"] = self._cursor(nxt)
        return self._json(out)

    async def _h_market_one(self, request: web.Request) -> web.Response:
        key = request.match_info["id"]
        for m in self._all_markets():
            if key == m.gamma_id:
                return self._json(self._gamma_market(m))
            if key == m.cid:  # the CLOB's /markets/{condition_id}
                bb, ba = self._top(m.yes)
                mid = ((bb or 0) + (ba or ONE)) // 2
                return self._json({
                    "condition_id": m.cid, "question_id": m.question_id, "question": m.question,
                    "market_slug": m.slug, "active": True, "closed": m.resolved, "accepting_orders": not m.resolved,
                    "enable_order_book": True, "minimum_order_size": 5, "minimum_tick_size": float(m.tick_str),
                    "neg_risk": m.neg_risk, "tokens": [
                        {"token_id": m.yes, "outcome": m.outcomes[0], "price": mid / ONE, "winner": m.winner == m.yes},
                        {"token_id": m.no, "outcome": m.outcomes[1], "price": (ONE - mid) / ONE,
                         "winner": m.winner == m.no}],
                })  # fmt: skip
        return self._json({"error": "market not found"}, 404)

    def _filter_events(self, request: web.Request) -> list[_Market]:
        ids, slugs = self._multi(request, "id"), self._multi(request, "slug")
        series, tags = self._multi(request, "series_id"), self._multi(request, "tag_slug")
        closed = self._flag(request, "closed")
        return [m for m in self._all_markets()
                if (not ids or str(800_000 + m.idx) in ids) and (not slugs or m.slug in slugs)
                and (closed is None or m.resolved == closed)
                and self._event_matches(m, series, tags)]  # fmt: skip

    def _event_matches(self, m: _Market, series: set[str], tags: set[str]) -> bool:
        if self.series is not None and m.window is not None:
            return self.series.event_matches(m, series, tags)
        if self.sports is not None:
            return self.sports.event_matches(m, series, tags)
        return not series and not tags

    async def _h_series(self, request: web.Request) -> web.Response:
        """Gamma ``/series`` (filter ``slug``): the sports league's series if a game runs, and the
        recurring up/down series (``SimConfig.series``)."""
        slugs = self._multi(request, "slug")
        out = self.sports.series(slugs) if self.sports is not None else []
        if self.series is not None:
            out += self.series.series(slugs)
        return self._json(out)

    async def _h_events(self, request: web.Request) -> web.Response:
        ms, _ = self._page(request, self._filter_events(request), 500)
        return self._json([self._gamma_event(m) for m in ms])

    async def _h_events_keyset(self, request: web.Request) -> web.Response:
        allm = self._filter_events(request)
        ms, nxt = self._page(request, allm, 500)
        out: dict[str, Any] = {"events": [self._gamma_event(m) for m in ms]}
        if nxt < len(allm):
            out["next_cursor"] = self._cursor(nxt)
        return self._json(out)

    async def _h_event_one(self, request: web.Request) -> web.Response:
        key = request.match_info["id"]
        for m in self._all_markets():
            if key in (str(800_000 + m.idx), m.slug):
                return self._json(self._gamma_event(m))
        return self._json({"error": "event not found"}, 404)

    # control

    async def _h_control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return self._json({"error": "body is not JSON"}, 400)
            if isinstance(body, dict):
                params.update(body)
        try:
            result = self._control(action, params)
        except (ValueError, TypeError) as exc:
            return self._json({"error": str(exc)}, 400)
        except KeyError:
            return self._json({"error": f"unknown control {action!r}"}, 404)
        return self._json(result)

    def _control(self, action: str, p: dict[str, Any]) -> dict[str, Any]:
        mk = p.get("market")
        if action == "state":
            return self.state()
        if action == "step":
            return {"ok": True, "frames": len(self.step(int(p.get("n", 1))))}
        if action == "pause":
            self.pause()
        elif action == "resume":
            self.resume()
        elif action == "drop":
            return {"ok": True, "dropped": self.drop()}
        elif action == "freeze":
            drop = p.get("drop", False)
            self.freeze(float(p.get("seconds", 5)), drop in (True, "true", "1", 1))
        elif action == "malformed":
            return {"ok": True, "frame": self.malformed(str(p.get("kind", "json")), mk)}
        elif action == "crossed":
            return {"ok": True, "frame": self.crossed(mk)}
        elif action == "tick_size":
            return {"ok": True, "tick_size": self.tick_size(mk, p.get("tick"))}
        elif action == "trade":
            return {"ok": self.trade(mk, p.get("side"))}
        elif action == "resolve":
            return {"ok": True, "frame": self.resolve(mk, p.get("winner"))}
        elif action == "add_market":
            return {"ok": True, "market": self.add_market()}
        elif action == "sports":
            if self.sports is None:
                raise ValueError("the simulator runs no game (SimConfig.sports is false)")
            return self.sports.state()
        elif action == "advance":
            frames = self.advance(float(p.get("seconds", 0)))
            return {"ok": True, "now": self._clock() // 1_000_000_000, "frames": len(frames)}
        elif action == "series":
            if self.series is None:
                raise ValueError("the simulator runs no series (SimConfig.series is empty)")
            return self.series.state()
        else:
            return self.exchange.control(action, p)  # KeyError: unknown control
        return {"ok": True}


# ---------------------------------------------------------------------------------------------
# CLI


def run_sim(config: SimConfig, out: TextIO | None = None) -> int:
    """Run the simulator until SIGINT/SIGTERM (blocking); prints the URLs first. Returns 0."""
    w = out or sys.stdout

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = SimServer(config)
        await server.start()
        mode = f"replaying {config.recording} at speed {config.speed}" if config.recording else (
            f"seed {config.seed}, {config.n_markets} markets, {config.rate}/s, tick {config.tick_size}")
        w.write(f"polybot sim: {mode}\n")
        for m in server.markets:
            w.write(f"  market  {m['slug']}  {m['condition_id']}\n          YES {m['yes']}\n          NO  {m['no']}\n")
        w.write(f"  rest    {server.rest_url}\n  gamma   {server.gamma_url}\n  control {server.rest_url}/_sim/state\n"
                f"  ws      {server.ws_url}\n  user ws {server.user_ws_url}\n"
                f"  rpc     {server.rpc_url} (chain {config.chain_id})\n  relayer {server.relayer_url}\n")  # fmt: skip
        if server.sports is not None:
            st = server.sports.state()
            g = st["games"][-1]
            w.write(f"  sports  {g['title']} ({g['slug']}, gameId {g['game_id']}; YES = {g['home']}), tip {g['tip']}, "
                    f"{config.game_seconds:g} s a game, market lag {config.market_lag_s:g} s\n"
                    f"  scores  {server.sports_ws_url}\n  odds    {server.odds_url}{st['odds']}?apiKey=sim&regions=us,eu\n")
        w.flush()
        try:
            await stop.wait()
        finally:
            await server.stop()
        logger.info("sim stopped")

    asyncio.run(main())
    return 0
