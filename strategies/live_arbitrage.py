"""Live-event arbitrage: trade a Polymarket sports market that still sits on the old price
after a score change.

When a goal, a basket or a point changes a game's score, the score feed knows at once and the
Polymarket book follows seconds later. On each score change this strategy recomputes the fair
probability of every outcome token of the game's markets (:mod:`polybot.sports.winprob`: a
Brownian-motion margin model for basketball and football, a Poisson goal model for soccer and
hockey, from the score, the time left and a pregame prior) and buys a token whose best ask is
below that fair value by more than ``min_edge`` after the taker fee.

    [strategies.arb]
    class = "live_arbitrage"
    market_types = ["moneyline"]   # also "spreads", "totals"
    size = "20"                    # shares per order (before the risk chain)
    max_position = "100"           # shares per token
    min_edge = "0.04"              # fair - price - fee per share, at least
    delay_edge = "0.02"            # extra edge where the venue delays matching (in play)
    window_s = 8.0                 # after a score change, also act on book updates this long
    prior = "odds"                 # pregame prior: bookmakers ("odds"), the book ("market"), "fixed"

How it decides, per game and token:

* **Prior.** The model is solved once per game, when the game is first seen live, from the
  pregame home-win probability: the bookmakers' de-vigged consensus (``prior = "odds"``, quotes
  up to ``prior_max_age_s`` old and made before the game's start: the market's, else the odds
  event's; without either, only while the score is level and the game has barely started), the
  Polymarket mid of the home token (``"market"``, only while the score is still level and the
  game has barely started), or ``p0`` (``"fixed"``). A game without a prior is reported once
  and not traded.
* **Trigger.** A score change (the scoreboard publishes only news) opens a window of
  ``window_s``: the game's markets are priced at once and again on every book change of their
  tokens inside the window (liquidity at the old price may arrive after the score). Nothing is
  bought outside a window.
* **Edge.** Buy a token when ``fair - best ask - taker fee per share >= min_edge`` (+
  ``delay_edge`` on a market whose matching the venue delays in play). The order is a FAK BUY
  whose limit is the highest tick price that still has that edge
  (:func:`polybot.sports.pricing.buy_limit`: prices round down for buys), sized ``size`` up to
  ``max_position`` (lots of 0.01, at least $1 at the limit), with the fair value as the intent's
  ``probability`` (a Kelly sizing validator can use it).
* **Matching delay.** On in-play sports markets Polymarket holds a marketable order for the
  market's delay (``secondsDelay``, 3 s) and answers ``delayed``. The strategy requires the
  extra ``delay_edge`` there, never has more than one order in flight per market, and relies on
  its limit price: if the book catches up during the delay, the order is killed, not filled at a
  worse price (the paper executor models the same delay, so a replay does too).
* **Staleness and disagreement.** No trade when: the game state was last heard more than
  ``max_state_age_s`` ago, or its feed time lags the receive time by more than
  ``max_feed_lag_s``; a score feed named in ``score_feeds`` reported ``FeedStale`` /
  ``FeedDisconnected`` and no game state has arrived since; two score feeds report different
  scores for the game; the bookmakers' consensus from prices made after the game state (in a
  score change's window: after the score change; when there are such) is further than
  ``max_model_gap`` from the model (one of them is wrong); the clock cannot be read (an
  unknown period) or the game is not live.
* **Exit.** ``exit = "catch_up"`` sells a position with a FAK once the market has caught up: the
  best bid, after the fee, is at least the token's current fair value less ``exit_edge``.
  ``exit = "hold"`` keeps it to resolution.

Latency is measured, never used: for each order, ``score_to_order_ns`` (kernel time from the
score change's receive to the order; 0 when it is sent on the score event itself),
``feed_lag_ns`` (receive time minus the feed's own time of the state) and ``decide_us`` (wall
time inside the handler, ``time.perf_counter``). :meth:`LiveArbitrage.report` summarises them;
none of it enters a decision, so a replay makes the same decisions.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec

from polybot.book import OrderBook
from polybot.events import (
    BookDelta,
    BookSnapshot,
    FeedDisconnected,
    FeedStale,
    GameState,
    MarketInfo,
    OrderIntent,
)
from polybot.sports.markets import Linked, moneyline_consensus, odds_consensus
from polybot.sports.pricing import buy_limit, fee_per_share, floor_lot, prob_units, sell_floor, token_fair
from polybot.sports.winprob import GameModel, time_remaining
from polybot.sports.base import SportsStrategy
from polybot.strategy import StrategyParams, Units
from polybot.units import SCALE, from_units

NS = 1_000_000_000
MIN_MARKETABLE = 1_000_000  # a marketable order must be worth $1 at its limit
SKIPS = ("no_prior", "stale", "feed_lag", "feed_down", "feeds_disagree", "no_clock", "not_live",
         "model_vs_books", "unhealthy_book", "no_edge", "fees_remove_edge", "position_cap",
         "below_min", "in_flight", "unpriced", "per_change")  # fmt: skip
LATENCY_SAMPLES = 1000


class LiveArbitrage(SportsStrategy):
    name = "live_arbitrage"

    class Params(StrategyParams):
        markets: list[str] = []  # slugs or condition ids ([] = every linked sports market)
        market_types: list[str] = msgspec.field(default_factory=lambda: ["moneyline"])
        size: Units = Units(20_000_000)
        max_position: Units = Units(100_000_000)
        min_edge: Units = Units(40_000)
        delay_edge: Units = Units(20_000)
        window_s: float = 8.0
        orders_per_change: int = 1  # buys per token per score change (inside its window)
        max_state_age_s: float = 300.0
        max_feed_lag_s: float = 15.0
        score_feeds: list[str] = []  # feed instance names whose health gates trading
        prior: Literal["odds", "market", "fixed"] = "odds"
        p0: float = 0.5  # the home side's pregame win probability with prior = "fixed"
        prior_max_age_s: float = 6 * 3600.0
        devig: Literal["multiplicative", "power"] = "power"
        sharp_books: list[str] = msgspec.field(default_factory=lambda: ["pinnacle"])
        sharp_weight: float = 2.0
        max_model_gap: float = 0.15  # |model - live bookmaker consensus|, when the books are fresh
        odds_max_age_s: float = 30.0
        exit: Literal["catch_up", "hold"] = "catch_up"
        exit_edge: Units = Units(30_000)
        aliases: dict[str, str] = {}

        def __post_init__(self) -> None:
            if self.size <= 0 or self.max_position <= 0:
                raise ValueError("size, max_position: must be > 0")
            if self.min_edge < 0 or self.delay_edge < 0 or self.exit_edge < 0:
                raise ValueError("min_edge, delay_edge, exit_edge: must be >= 0")
            if not 0.0 < self.p0 < 1.0:
                raise ValueError("p0: must be in (0, 1)")
            for k in ("window_s", "max_state_age_s", "max_feed_lag_s", "prior_max_age_s", "odds_max_age_s"):
                if getattr(self, k) < 0:
                    raise ValueError(f"{k}: must be >= 0")
            if self.orders_per_change < 1:
                raise ValueError("orders_per_change: must be >= 1")
            if not 0.0 < self.max_model_gap <= 1.0:
                raise ValueError("max_model_gap: must be in (0, 1]")

    # ------------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        p = self.params
        self.models: dict[str, list[Any]] = {}  # game -> [p0, source]
        self.models_obj: dict[str, GameModel] = {}
        self.scores: dict[str, tuple[int, int]] = {}  # game -> last score seen
        self.window: dict[str, int] = {}  # game -> kernel ts the score change was received
        self.bought: dict[str, int] = {}  # token -> buys sent in the current window
        self.feed_down: dict[str, int] = {}  # score feed name -> ts it was reported stale/down
        self.no_prior: set[str] = set()
        self.stats: dict[str, int] = dict.fromkeys(("score_changes", "evaluations", "orders", "exits", "fills") + SKIPS, 0)
        self.latency: list[tuple[int, int, int]] = []  # (score_to_order_ns, feed_lag_ns, decide_us)
        self._t0 = 0.0
        self._agree: bool | None = None
        ctx = self.ctx
        ctx.subscribe(GameState, self.on_game)
        ctx.subscribe(FeedStale, self.on_feed_down)
        ctx.subscribe(FeedDisconnected, self.on_feed_down)
        self.start_sports(p.markets, p.market_types, need_game=True, need_odds=False, aliases=p.aliases)

    # ------------------------------------------------------------------ inputs

    def on_feed_down(self, ev: FeedStale | FeedDisconnected) -> None:
        if ev.feed in self.params.score_feeds:
            self.feed_down[ev.feed] = ev.ts

    def on_game(self, ev: GameState) -> None:
        self._t0 = time.perf_counter()
        self.feed_down.clear()  # the score feed is delivering again
        self.relink()
        idx = self.index
        gid = ev.game_id
        lns = idx.for_game(gid)
        if not lns:
            return
        if ev.live and gid not in self.models_obj and gid not in self.no_prior:
            self._solve_prior(gid, ev, lns)
        score = (ev.home_score, ev.away_score)
        old = self.scores.get(gid)
        self.scores[gid] = score
        if old is None or old == score or not ev.live:
            return
        self.stats["score_changes"] += 1
        self.window[gid] = ev.ts
        for ln in lns:
            for a in ln.info.asset_ids:
                self.bought.pop(a, None)
        for ln in lns:
            self._evaluate(ln, buy=True)

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        if ev.__class__ is BookDelta and not ev.run_end:  # type: ignore[union-attr]
            return
        hit = self.index.for_asset(ev.asset_id)
        if hit is None:
            return
        ln = hit[0]
        gid = ln.game_id
        if not gid:
            return
        self._t0 = time.perf_counter()
        opened = self.window.get(gid)
        buy = opened is not None and ev.ts - opened <= int(self.params.window_s * NS)
        if not buy and opened is not None:
            del self.window[gid]
        self._evaluate(ln, buy=buy)

    # ------------------------------------------------------------------ the decision

    def _solve_prior(self, gid: str, ev: GameState, lns: list[Linked]) -> None:
        p = self.params
        p0: float | None = None
        pdraw: float | None = None
        src = p.prior
        if p.prior == "fixed":
            p0 = p.p0
        elif p.prior == "odds":
            # pregame prices only: a price made in play already has the score in it (the model
            # would count the lead twice); the start is the market's, else the odds event's,
            # and without either only a level game that has barely started may use them
            tau = self._tau(ev)
            for ln in lns:
                sp = ln.info.sports
                start = (sp.start_ts if sp is not None else 0) or (
                    self.ctx.odds.event_teams(ln.odds_event)[3] if ln.odds_event else 0)
                if not start and not (ev.home_score == ev.away_score and tau is not None and tau >= 0.97):
                    continue
                c = moneyline_consensus(ln, self.ctx.odds, now=ev.ts, max_age_ns=int(p.prior_max_age_s * NS),
                                        method=p.devig, sharp=p.sharp_books, sharp_weight=p.sharp_weight,
                                        until_ns=start or ev.ts)  # fmt: skip
                if c is not None:
                    p0, pdraw = c[0], c[1]
                    break
        else:  # "market": the home token's mid while the game is level and barely started
            tau = self._tau(ev)
            if ev.home_score == ev.away_score and tau is not None and tau >= 0.97:
                for ln in lns:
                    if ln.market_type == "moneyline" and ln.sides and ln.sides[0] in ("home", "away"):
                        b = self.ctx.books.get(ln.info.asset_ids[0])
                        if b is not None and b.healthy and b.mid:
                            m = b.mid / SCALE
                            p0 = m if ln.sides[0] == "home" else 1.0 - m
                            break
        if p0 is None or not 0.0 < p0 < 1.0:
            self.no_prior.add(gid)
            self.stats["no_prior"] += 1
            self.ctx.log.warning("game {} ({} v {}): no pregame prior from {!r}: not traded", gid, ev.home, ev.away, p.prior)
            return
        try:
            model = _model(ev, p0, pdraw)
        except ValueError as exc:
            self.no_prior.add(gid)
            self.stats["no_prior"] += 1
            self.ctx.log.warning("game {} ({} v {}): no model: {}", gid, ev.home, ev.away, exc)
            return
        self.models[gid] = [p0, src, pdraw]
        self.models_obj[gid] = model
        self.ctx.log.info("game {} ({} v {}): model solved from the {} prior p0(home) = {:.4f}", gid, ev.home, ev.away, src, p0)

    def _tau(self, g: GameState) -> float | None:
        try:
            return time_remaining(g.sport, g.league, g.period, g.elapsed_s, g.elapsed_scope)
        except ValueError:
            return None

    def _state(self, gid: str) -> GameState | str:
        """The game's current state, or why it cannot be traded on."""
        p = self.params
        sb = self.ctx.scoreboard
        g = sb.get(gid)
        if g is None:
            return "stale"
        now = self.ctx.now()
        if self.feed_down:
            return "feed_down"
        if now - sb.heard(gid) > p.max_state_age_s * NS:
            return "stale"
        if g.feed_ts and g.ts - g.feed_ts > p.max_feed_lag_s * NS:
            return "feed_lag"
        for other in sb.states(gid).values():
            if other is g or now - sb.heard(gid, other.feed) > p.max_state_age_s * NS:
                continue
            if (other.home_score, other.away_score) != (g.home_score, g.away_score):
                return "feeds_disagree"
        if not g.live or g.ended:
            return "not_live"
        return g

    def _skip(self, why: str) -> None:
        self.stats[why] += 1

    def _evaluate(self, ln: Linked, buy: bool) -> None:
        if not self.index.ready(ln):
            return
        if not buy and (self.params.exit == "hold" or not any(self.ctx.position(a) > 0 for a in ln.info.asset_ids)):
            return  # outside a window only an exit can be due: nothing to price on this update
        gid = ln.game_id
        model = self.models_obj.get(gid)
        if model is None:
            if buy:
                self._skip("no_prior")
            return
        st = self._state(gid)
        if isinstance(st, str):
            if buy:
                self._skip(st)
            return
        tau = self._tau(st)
        if tau is None:
            if buy:
                self._skip("no_clock")
            return
        self.stats["evaluations"] += 1
        info = ln.info
        sp = info.sports
        line = sp.line if sp is not None else None
        fairs = []
        for side in ln.sides:
            f = token_fair(model, side, ln.market_type, st.home_score, st.away_score, tau, line, ln.sides[0])
            if f is None:
                self._skip("unpriced")
                return
            fairs.append(f)
        p = self.params
        if any(self.ctx.open_orders(a) for a in info.asset_ids):  # the per-asset index
            if buy:
                self._skip("in_flight")
            return
        self._agree = None  # the bookmaker check below, computed once and only when an order is due
        for i, a in enumerate(info.asset_ids):
            book = self.ctx.books.get(a)
            if book is None or not book.healthy or book.crossed:
                if buy:
                    self._skip("unhealthy_book")
                continue
            held = self.ctx.position(a)
            if held > 0 and p.exit == "catch_up" and self._exit(ln, st, a, book, fairs, i, held):
                return
            if buy and self._buy(ln, st, a, book, fairs, i, held):
                return

    def _books_agree(self, ln: Linked, st: GameState, fairs: list[float], buy: bool) -> bool:
        """Whether the bookmakers that priced the current score (if any did) agree with the
        model within ``max_model_gap``. Computed once per evaluation, just before an order."""
        if self._agree is None:
            p = self.params
            ok = True
            if ln.odds_event:
                # only bookmaker prices made after this game state's score can be compared with
                # it (before, they price the old score: the very lag this strategy trades); in a
                # window that is since the score change, not since a later clock-only update
                now = self.ctx.now()
                gid = ln.game_id
                age = min(int(p.odds_max_age_s * NS), now - min(st.ts, self.window.get(gid, st.ts)))
                books = odds_consensus(ln, self.ctx.odds, now=now, max_age_ns=age, method=p.devig,
                                       sharp=p.sharp_books, sharp_weight=p.sharp_weight)  # fmt: skip
                ok = books is None or max(abs(a - b) for a, b in zip(fairs, books.probs)) <= p.max_model_gap
            self._agree = ok
            if not ok and buy:
                self._skip("model_vs_books")
        return self._agree

    def _delay_ns(self, info: MarketInfo) -> int:
        sp = info.sports
        if sp is None or sp.delay_ms <= 0 or (sp.start_ts and self.ctx.now() < sp.start_ts):
            return 0
        return sp.delay_ms * 1_000_000

    def _buy(self, ln: Linked, g: GameState, asset: str, book: OrderBook, fairs: list[float], i: int, held: int) -> bool:
        p = self.params
        fair = fairs[i]
        info = ln.info
        ask = book.best_ask
        if not ask:
            self._skip("no_edge")
            return False
        need = p.min_edge + (p.delay_edge if self._delay_ns(info) else 0)
        f = prob_units(fair)
        fee = fee_per_share(ask, info.fees)
        if f - ask < need:
            self._skip("no_edge")
            return False
        if f - ask - fee < need:
            self._skip("fees_remove_edge")
            return False
        tick = book.tick_size or info.tick_size
        limit = buy_limit(fair, need, tick, info.fees)
        if limit < ask:
            self._skip("fees_remove_edge")
            return False
        if self.bought.get(asset, 0) >= p.orders_per_change:
            self._skip("per_change")
            return False
        room = p.max_position - held
        size = floor_lot(min(p.size, room, book.size_up_to("BUY", limit)))
        if size <= 0:
            self._skip("position_cap" if room <= 0 else "no_edge")
            return False
        if size * limit // SCALE < MIN_MARKETABLE:
            self._skip("below_min")
            return False
        if not self._books_agree(ln, g, fairs, True):
            return False
        note = f"score {g.home_score}-{g.away_score} {g.period} {g.clock}: fair {fair:.4f}"
        intent = OrderIntent(strategy=self.id, asset_id=asset, market=info.market, side="BUY", price=limit, size=size,
                             kind="limit", tif="FAK", probability=round(fair, 6), note=note)  # fmt: skip
        d = self.ctx.submit(intent)
        self.stats["orders"] += 1
        self.bought[asset] = self.bought.get(asset, 0) + 1
        self._measure(g)
        self.ctx.log.info("{}: BUY {} @ {} ({}): {}", info.slug or info.market, from_units(size), from_units(limit),
                          d.action, note)  # fmt: skip
        return True

    def _exit(self, ln: Linked, g: GameState, asset: str, book: OrderBook, fairs: list[float], i: int, held: int) -> bool:
        p = self.params
        info = ln.info
        fair = fairs[i]
        bid = book.best_bid
        if not bid:
            return False
        tick = book.tick_size or info.tick_size
        floor = sell_floor(fair, p.exit_edge, tick, info.fees)
        if not floor or bid < floor:
            return False
        size = floor_lot(min(held, book.size_up_to("SELL", floor)))
        if size <= 0 or size * floor // SCALE < MIN_MARKETABLE:
            return False
        if not self._books_agree(ln, g, fairs, False):
            return False  # the model may be wrong: its fair value is no exit signal
        intent = OrderIntent(strategy=self.id, asset_id=asset, market=info.market, side="SELL", price=floor, size=size,
                             kind="limit", tif="FAK", reduce_only=True, note=f"caught up: fair {fair:.4f}")  # fmt: skip
        d = self.ctx.submit(intent)
        self.stats["exits"] += 1
        self.ctx.log.info("{}: SELL {} @ {} ({}): market caught up, fair {:.4f}", info.slug or info.market,
                          from_units(size), from_units(floor), d.action, fair)  # fmt: skip
        return True

    def _measure(self, g: GameState) -> None:
        opened = self.window.get(g.game_id, g.ts)
        sample = (self.ctx.now() - opened, g.ts - g.feed_ts if g.feed_ts else -1,
                  int((time.perf_counter() - self._t0) * 1e6))  # fmt: skip
        self.latency.append(sample)
        if len(self.latency) > LATENCY_SAMPLES:
            del self.latency[: len(self.latency) - LATENCY_SAMPLES]

    # ------------------------------------------------------------------ reporting and state

    def report(self) -> dict[str, Any]:
        """Counts of what happened and why nothing happened, the games' priors, unlinked
        markets, and latency percentiles (measured, never used in a decision)."""

        def pct(xs: list[int], q: float) -> int:
            if not xs:
                return 0
            s = sorted(xs)
            return s[min(len(s) - 1, int(q * len(s)))]

        s2o = [x[0] for x in self.latency]
        lag = [x[1] for x in self.latency if x[1] >= 0]
        dec = [x[2] for x in self.latency]
        return {
            "stats": dict(self.stats),
            "priors": {g: {"p0_home": v[0], "source": v[1]} for g, v in sorted(self.models.items())},
            "unmatched": dict(sorted(self.index.unmatched.items())),
            "latency": {
                "orders": len(self.latency),
                "score_to_order_ms_p50": pct(s2o, 0.5) / 1e6, "score_to_order_ms_p99": pct(s2o, 0.99) / 1e6,
                "feed_lag_ms_p50": pct(lag, 0.5) / 1e6, "feed_lag_ms_p99": pct(lag, 0.99) / 1e6,
                "decide_us_p50": pct(dec, 0.5), "decide_us_p99": pct(dec, 0.99),
            },
        }  # fmt: skip

    def snapshot(self) -> Any:
        return {
            "models": {g: v for g, v in sorted(self.models.items())},
            "no_prior": sorted(self.no_prior),
            "scores": {g: list(v) for g, v in sorted(self.scores.items())},
            "window": dict(sorted(self.window.items())),
            "bought": dict(sorted(self.bought.items())),
            "feed_down": dict(sorted(self.feed_down.items())),
            "links": self.index.to_state(),
            "stats": dict(self.stats),
        }

    def restore(self, state: Any) -> None:
        self.index.restore_links(state.get("links", []), self.ctx.catalog)
        for ln in self.index.linked.values():
            self.watch(ln)
        self.no_prior = set(state.get("no_prior", []))
        self.scores = {g: (int(v[0]), int(v[1])) for g, v in state.get("scores", {}).items()}
        self.window = {g: int(t) for g, t in state.get("window", {}).items()}
        self.bought = {a: int(n) for a, n in state.get("bought", {}).items()}
        self.feed_down = {f: int(t) for f, t in state.get("feed_down", {}).items()}
        self.stats.update({k: int(v) for k, v in state.get("stats", {}).items() if k in self.stats})
        self.models, self.models_obj = {}, {}
        for g, (p0, src, pdraw) in state.get("models", {}).items():
            st = self.ctx.scoreboard.get(g)
            if st is None:
                continue
            try:
                self.models_obj[g] = _model(st, float(p0), pdraw)
                self.models[g] = [float(p0), src, pdraw]
            except ValueError:
                self.no_prior.add(g)


def _model(g: GameState, p0: float, pdraw: float | None) -> GameModel:
    """The game's model from the pregame prior (the draw probability where the model prices
    draws and the bookmakers gave one)."""
    if pdraw and pdraw > 0.0:
        try:
            return GameModel.for_sport(g.sport, g.league, p0, p_draw=pdraw)
        except ValueError:
            pass  # a model without draws (basketball) or a prior it cannot reproduce
    return GameModel.for_sport(g.sport, g.league, p0)
