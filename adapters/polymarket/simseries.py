"""Recurring up/down series in the exchange simulator (``SimConfig.series``, ``server.series``).

A series such as ``btc-updown-5m`` is a market per window (5m, 15m, 1h, 4h: the durations of
:data:`adapters.polymarket.gamma.DURATIONS`). The simulator lists each window at Gamma under its
real slug (``btc-updown-5m-<window start>``; the hourly ``bitcoin-up-or-down-<date>-<h><am|pm>-et``)
``SimConfig.series_ahead`` windows before it starts, with the real Gamma shapes (outcomes
Up/Down, ``eventStartTime`` = window start, ``endDate`` = window end, ``startDate`` = when it was
listed, the crypto fee schedule, the event's ``series[]`` entry), walks its book like every other
market, and at the window's end (plus ``SimConfig.series_resolve_delay_s``) resolves it: Up wins
when the Up book's mid is at least 0.5. Resolution is the simulator's :meth:`SimServer.resolve`:
a ``market_resolved`` frame to custom-feature connections, Gamma ``closed`` with
``outcomePrices`` ``["1", "0"]`` or ``["0", "1"]``, no book from then on.

Time is the simulator's clock (``SimConfig.clock`` plus the offset that ``SimServer.advance``
and the ``/_sim/advance?seconds=…`` control add), so a test jumps whole windows without waiting.
With ``autostart`` a task lists and resolves windows on time; without it, :meth:`SimServer.advance`
and :meth:`SimServer.series_tick` do it (a test drives them). The market ids of a window derive
from the seed and its slug: the same window has the same ids whenever it is listed.

Gamma also answers the series' own objects: ``/series?slug=btc-up-or-down-5m`` and
``/events?series_id=…`` / ``/events/keyset?series_id=…&closed=false`` (the ids are stable
numbers; the 15m BTC one is the real ``10192``).
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from polybot.units import ONE

from .gamma import ASSET_NAMES, DURATIONS, et_offset_s, window_slug, window_start
from .simexchange import stop_task

if TYPE_CHECKING:  # pragma: no cover
    from .sim import SimConfig, SimServer, _Market

NS = 1_000_000_000
CENT = 10_000
#: the fee schedule Gamma shows for the crypto up/down markets (PROTOCOL.md §4)
CRYPTO_FEES = {"exponent": 1, "rate": 0.07, "takerOnly": True, "rebateRate": 0.2}
#: Gamma series ids: the 15m BTC one is the real ``10192``; the others are stable stand-ins
KNOWN_SERIES_IDS = {"btc-up-or-down-15m": "10192", "btc-up-or-down-5m": "10684"}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip


def is_updown_series(name: str) -> bool:
    """Whether ``name`` is a recurring up/down series the simulator (and the feed) can window."""
    try:
        window_start(name, 0)
    except ValueError:
        return False
    return True


def gamma_series_slug(name: str) -> str:
    """Gamma's own slug of a series: ``btc-updown-5m`` -> ``btc-up-or-down-5m``
    (``btc-updown-1h`` -> ``btc-up-or-down-hourly``)."""
    asset, _, dur = name.split("-", 2)
    return f"{asset}-up-or-down-{'hourly' if dur == '1h' else dur}"


def gamma_series(name: str) -> dict[str, Any]:
    """The Gamma ``series`` object of an up/down series (as in ``/series`` and an event's ``series[]``)."""
    slug = gamma_series_slug(name)
    sid = KNOWN_SERIES_IDS.get(slug) or str(20_000 + zlib.crc32(slug.encode()) % 10_000)
    asset, _, dur = name.split("-", 2)
    return {"id": sid, "ticker": slug, "slug": slug, "title": f"{asset.upper()} Up or Down {dur}",
            "seriesType": "single", "recurrence": dur, "active": True, "closed": False}  # fmt: skip


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _et_clock(t: int) -> tuple[datetime, str]:
    local = datetime.fromtimestamp(t + et_offset_s(t), UTC)
    h12 = local.hour % 12 or 12
    return local, f"{h12}:{local.minute:02d}{'AM' if local.hour < 12 else 'PM'}"


def window_title(name: str, start_s: int, dur_s: int) -> str:
    """The question of a window, as Gamma writes it: ``Bitcoin Up or Down - July 23, 7:55PM-8:00PM ET``."""
    asset = name.split("-", 1)[0]
    local, a = _et_clock(start_s)
    _, b = _et_clock(start_s + dur_s)
    return f"{ASSET_NAMES.get(asset, asset).title()} Up or Down - {_MONTHS[local.month - 1]} {local.day}, {a}-{b} ET"


class SeriesWindow:
    """One window of a series and its market."""

    __slots__ = ("series", "slug", "start_s", "end_s", "market")

    def __init__(self, series: str, slug: str, start_s: int, end_s: int, market: _Market) -> None:
        self.series = series
        self.slug = slug
        self.start_s = start_s
        self.end_s = end_s
        self.market = market

    def info(self) -> dict[str, Any]:
        m = self.market
        return {"series": self.series, "slug": self.slug, "start": self.start_s, "end": self.end_s,
                "condition_id": m.cid, "up": m.yes, "down": m.no, "resolved": m.resolved,
                "winner": "" if m.winner is None else ("Up" if m.winner == m.yes else "Down")}  # fmt: skip


class SimSeries:
    """The recurring series of a :class:`~adapters.polymarket.sim.SimServer` (``server.series``)."""

    def __init__(self, server: SimServer, cfg: SimConfig) -> None:
        self.server = server
        self.cfg = cfg
        self.names = list(dict.fromkeys(cfg.series))
        for name in self.names:
            if not is_updown_series(name):
                raise ValueError(f"series: not a recurring up/down series: {name!r} (e.g. btc-updown-5m)")
        self.windows: dict[str, SeriesWindow] = {}  # slug -> window, in listing order
        self._task: asyncio.Task[None] | None = None
        self.now_ns = int(server._clock())
        self.tick(self.now_ns)

    # -- time ---------------------------------------------------------------------------------

    def tick(self, now_ns: int) -> list[str]:
        """List the windows due by ``now_ns`` (the current one and ``series_ahead`` next ones) and
        resolve the ended ones, in time order; returns the frames sent."""
        srv = self.server
        out: list[str] = []
        prev, srv._out = srv._out, out
        try:
            self.now_ns = max(self.now_ns, int(now_ns))
            now_s = self.now_ns // NS
            delay_s = self.cfg.series_resolve_delay_s
            for w in self.windows.values():
                if not w.market.resolved and now_s >= w.end_s + delay_s:
                    self._resolve(w)
            for name in self.names:
                dur = DURATIONS[name.rsplit("-", 1)[1]]
                start = window_start(name, now_s)
                for k in range(self.cfg.series_ahead + 1):
                    s = start + k * dur
                    slug = window_slug(name, s)
                    if slug not in self.windows:
                        self._list(name, slug, s, s + dur)
        finally:
            srv._out = prev
        return out

    def start(self, autostart: bool) -> None:
        if autostart:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                self.tick(int(self.server._clock()))
            except Exception:  # noqa: BLE001 - a bug in one window must not stop the series
                logger.exception("sim series: tick failed")
            await asyncio.sleep(0.25)

    # -- windows --------------------------------------------------------------------------------

    def _list(self, name: str, slug: str, start_s: int, end_s: int) -> SeriesWindow:
        from .sim import _Market

        srv = self.server
        ids = random.Random(f"polybot-sim/{self.cfg.seed}/series/{slug}")
        cid = f"0x{ids.getrandbits(256):064x}"
        up, down = (str(ids.randrange(10**76, 2**256)) for _ in range(2))
        qid = f"0x{ids.getrandbits(256):064x}"
        m = _Market(len(srv._markets), cid, up, down, qid, srv._base_tick, self.now_ns)
        m.slug = slug
        m.question = window_title(name, start_s, end_s - start_s)
        m.outcomes = ("Up", "Down")
        m.neg_risk = False
        self._book(m, ids)
        w = SeriesWindow(name, slug, start_s, end_s, m)
        m.window = w
        srv._register_market(m)
        self.windows[slug] = w
        logger.info("sim series: listed {} ({} - {})", slug, _iso(start_s * NS), _iso(end_s * NS))
        return w

    def _book(self, m: _Market, rng: random.Random) -> None:
        """An opening book around 0.50 (the walk moves it from there)."""
        t, levels = m.tick, self.cfg.levels
        bb = rng.randint(46, 50) * CENT // t * t
        ba = bb + t * rng.choice((1, 1, 2))
        for depth in range(levels):
            p = bb - depth * t
            if p >= t:
                m.bids[p] = self._size(rng, depth)
            p = ba + depth * t
            if p <= ONE - t:
                m.asks[p] = self._size(rng, depth)
        m.last_top = m.yes_top()

    @staticmethod
    def _size(rng: random.Random, depth: int) -> int:
        cents = max(500, int(rng.lognormvariate(4.0 + 0.15 * depth, 1.0) * 100))
        return cents // 100 * 100 * CENT if rng.random() < 0.4 else cents * CENT

    def _resolve(self, w: SeriesWindow) -> None:
        m = w.market
        bb, ba = m.yes_top()
        mid2 = (bb or 0) + (ba or ONE)
        self.server.resolve(m.cid, "yes" if mid2 >= ONE else "no")

    # -- Gamma ---------------------------------------------------------------------------------

    def series_obj(self, name: str) -> dict[str, Any]:
        return gamma_series(name)

    def series(self, slugs: set[str]) -> list[dict[str, Any]]:
        """Gamma ``/series`` (filter ``slug``): the objects of the configured series."""
        objs = [self.series_obj(n) for n in self.names]
        return [s for s in objs if not slugs or s["slug"] in slugs]

    def event_matches(self, m: _Market, series_ids: set[str], tags: set[str]) -> bool:
        """Whether a window's event passes the Gamma ``series_id`` / ``tag_slug`` filters."""
        w = m.window
        if not isinstance(w, SeriesWindow):
            return not series_ids and not tags
        return (not series_ids or self.series_obj(w.series)["id"] in series_ids) and \
            (not tags or not tags.isdisjoint(t["slug"] for t in self._tags()))  # fmt: skip

    @staticmethod
    def _tags() -> list[dict[str, Any]]:
        return [{"id": "102127", "label": "Up or Down", "slug": "up-or-down"},
                {"id": "1312", "label": "Crypto Prices", "slug": "crypto-prices"},
                {"id": "101757", "label": "Recurring", "slug": "recurring"},
                {"id": "21", "label": "Crypto", "slug": "crypto"}]  # fmt: skip

    def _description(self, w: SeriesWindow) -> str:
        asset = w.series.split("-", 1)[0]
        name = ASSET_NAMES.get(asset, asset).title()
        return (f"This market will resolve to \"Up\" if the {name} price at the end of the time range specified in "
                f"the title is greater than or equal to the price at the beginning of that range. Otherwise, it "
                f"will resolve to \"Down\". (polybot sim)")  # fmt: skip

    def gamma_market(self, m: _Market, g: dict[str, Any]) -> dict[str, Any]:
        """The walk market shape ``g`` of a window, with the real up/down fields."""
        w = m.window
        assert isinstance(w, SeriesWindow)
        end, start, listed = _iso(w.end_s * NS), _iso(w.start_s * NS), _iso(m.created_ns)
        asset, _, dur = w.series.split("-", 2)
        g.update({
            "question": m.question, "slug": w.slug, "description": self._description(w),
            "resolutionSource": f"https://data.chain.link/streams/{asset}-usd",
            "endDate": end, "endDateIso": end[:10], "startDate": listed, "startDateIso": listed[:10],
            "eventStartTime": start, "acceptingOrdersTimestamp": listed,
            "outcomes": json.dumps(list(m.outcomes)), "makerBaseFee": 1000, "takerBaseFee": 1000,
            "feesEnabled": True, "feeType": "crypto_fees_v2", "feeSchedule": dict(CRYPTO_FEES),
            "makerRebatesFeeShareBps": 10000, "negRisk": False, "restricted": True,
        })  # fmt: skip
        if dur in ("5m", "15m"):
            g["cryptoMarketConfigId"] = f"{asset}-{dur}"
            g["cryptoMarketConfig"] = {"id": f"{asset}-{dur}", "asset": asset, "duration": dur}
        return g

    def gamma_event(self, m: _Market, ev: dict[str, Any]) -> dict[str, Any]:
        """The walk event shape ``ev`` of a window's event."""
        w = m.window
        assert isinstance(w, SeriesWindow)
        g = ev["markets"][0]
        ev.update({"ticker": w.slug, "slug": w.slug, "title": m.question, "description": g["description"],
                   "resolutionSource": g["resolutionSource"], "startDate": g["startDate"],
                   "creationDate": g["startDate"], "endDate": g["endDate"], "negRisk": False,
                   "enableNegRisk": False, "restricted": True, "series": [self.series_obj(w.series)],
                   "tags": self._tags()})  # fmt: skip
        return ev

    def state(self) -> dict[str, Any]:
        return {"now": self.now_ns // NS, "series": self.names, "ahead": self.cfg.series_ahead,
                "windows": [w.info() for w in self.windows.values()]}  # fmt: skip
