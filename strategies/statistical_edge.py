"""Statistical edge: buy Polymarket sports outcomes priced below the sportsbooks' consensus, and
sell them when the edge closes.

The bookmakers' prices, de-vigged and averaged (sharp books weighted up), are the fair
probability of each outcome (:mod:`polybot.sports.markets`). When a Polymarket token's best ask
is below it by more than ``min_edge`` after the taker fee, and the consensus is trustworthy
(enough books, agreeing, fresh), the strategy buys; the size comes from fractional Kelly in the
risk chain (``[risk.validators.sizing] mode = "kelly"``), which reads the intent's
``probability`` (the consensus) and ``confidence``.

    [strategies.edge]
    class = "statistical_edge"
    market_types = ["moneyline"]  # also "spreads", "totals"
    min_edge = "0.03"             # consensus - price - fee per share, at least
    min_books = 2                 # bookmakers with a complete, fresh market
    max_dispersion = 0.03         # the books' disagreement (std of a probability), at most
    max_size = "200"              # shares per order asked of the risk chain (Kelly sizes it down)
    max_position = "400"          # shares per token
    exit_edge = "0.0"             # sell when the bid, after the fee, reaches consensus - this
    in_play = false               # also trade games already started (default: pregame only)

Decisions, per token of each linked market (a market is linked to a bookmaker event by
:mod:`polybot.sports.join`; unlinked markets are reported once and never traded):

* **Trigger.** A changed bookmaker price of the event (the odds board publishes only news) or a
  book change of the token. Evaluation is cheap and returns early when nothing is tradable.
* **Confidence.** At least ``min_books`` books with a complete market no older than
  ``odds_max_age_s``; their dispersion at most ``max_dispersion``. The intent's ``confidence``
  is ``1 - dispersion / (2 max_dispersion)`` (1 when the books agree, 0.5 at the limit): Kelly
  stakes less on a less certain consensus.
* **Entry.** ``fair - best ask - fee(ask) >= min_edge``: a FAK BUY whose limit is the highest
  tick price that keeps that edge (prices round down for buys), size ``max_size`` (or what the
  position cap leaves, and what the book offers up to the limit; lots of 0.01, at least $1),
  ``probability = fair``. Pregame only unless ``in_play`` (in play, the books themselves lag the
  score; see ``live_arbitrage``): in play is past the market's start time (else the odds
  event's commence time), or the linked game live or over. A token is not bought again within
  ``cooldown_s`` of a buy.
* **Exit.** When ``best bid - fee(bid) >= fair - exit_edge`` for a token held: a FAK SELL of
  the position at the lowest tick price that still gets that (sells round up). The edge closed.
* **Never** with an unhealthy or crossed book, a closed market, or an order of this strategy
  already open on the market.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from polybot.events import (
    BookDelta,
    BookSnapshot,
    OddsQuote,
    OrderIntent,
)
from polybot.sports.markets import Linked, OddsFair, odds_consensus
from polybot.sports.pricing import buy_limit, fee_per_share, floor_lot, prob_units, sell_floor
from polybot.sports.base import SportsStrategy
from polybot.strategy import StrategyParams, Units
from polybot.units import SCALE, from_units

NS = 1_000_000_000
MIN_MARKETABLE = 1_000_000  # $1 at the limit for a marketable order
SKIPS = ("no_consensus", "few_books", "dispersion", "in_play", "no_edge", "fees_remove_edge", "position_cap",
         "below_min", "cooldown", "in_flight", "unhealthy_book", "closed")  # fmt: skip


class StatisticalEdge(SportsStrategy):
    name = "statistical_edge"

    class Params(StrategyParams):
        markets: list[str] = []
        market_types: list[str] = msgspec.field(default_factory=lambda: ["moneyline"])
        min_edge: Units = Units(30_000)
        min_books: int = 2
        max_dispersion: float = 0.03
        odds_max_age_s: float = 120.0
        devig: Literal["multiplicative", "power"] = "power"
        sharp_books: list[str] = msgspec.field(default_factory=lambda: ["pinnacle"])
        sharp_weight: float = 2.0
        books: list[str] = []  # only these bookmakers ([] = all)
        max_size: Units = Units(200_000_000)
        max_position: Units = Units(400_000_000)
        exit_edge: Units = Units(0)
        in_play: bool = False
        cooldown_s: float = 30.0
        aliases: dict[str, str] = {}

        def __post_init__(self) -> None:
            if self.min_edge < 0 or self.exit_edge < 0:
                raise ValueError("min_edge, exit_edge: must be >= 0")
            if self.min_books < 1:
                raise ValueError("min_books: must be >= 1")
            if not 0.0 < self.max_dispersion <= 0.5:
                raise ValueError("max_dispersion: must be in (0, 0.5]")
            if self.max_size <= 0 or self.max_position <= 0:
                raise ValueError("max_size, max_position: must be > 0")
            if self.odds_max_age_s <= 0 or self.cooldown_s < 0 or self.sharp_weight < 0:
                raise ValueError("odds_max_age_s: must be > 0; cooldown_s, sharp_weight: >= 0")

    def on_start(self) -> None:
        p = self.params
        self.last_buy: dict[str, int] = {}  # token -> kernel ts of the last buy
        self.entry: dict[str, float] = {}  # token -> consensus at the last buy (for the report)
        # (market, odds event) -> (odds version, params, valid until, consensus): see _fair
        self._fairs: dict[tuple[str, str], tuple[int, Any, int, OddsFair | None]] = {}
        self.stats: dict[str, int] = dict.fromkeys(("evaluations", "orders", "exits", "fills") + SKIPS, 0)
        self.start_sports(p.markets, p.market_types, need_game=False, need_odds=True, aliases=p.aliases)

    # ------------------------------------------------------------------ inputs

    def on_odds(self, ev: OddsQuote) -> None:
        self.relink()
        for ln in self.index.for_event(ev.event_id):
            self._evaluate(ln)

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        if ev.__class__ is BookDelta and not ev.run_end:  # type: ignore[union-attr]
            return
        hit = self.index.for_asset(ev.asset_id)
        if hit is not None:
            self._evaluate(hit[0])

    # ------------------------------------------------------------------ the decision

    def _fair(self, ln: Linked) -> OddsFair | str:
        p = self.params
        now = self.ctx.now()
        ver = self.ctx.odds.version(ln.odds_event)
        hit = self._fairs.get((ln.market, ln.odds_event))
        # the consensus changes only when the event's quotes do, or when the oldest one used
        # ages out: kept until then (book updates come far more often than odds)
        if hit is not None and hit[0] == ver and hit[1] is p and now <= hit[2]:
            fair = hit[3]
        else:
            max_age = int(p.odds_max_age_s * NS)
            fair = odds_consensus(ln, self.ctx.odds, now=now, max_age_ns=max_age, method=p.devig, sharp=p.sharp_books,
                                  sharp_weight=p.sharp_weight, books=p.books)  # fmt: skip
            # none fresh stays so until a quote is stored (quotes only age)
            self._fairs[(ln.market, ln.odds_event)] = (ver, p, fair.oldest_ns + max_age if fair is not None else 2**63, fair)
        if fair is None:
            return "no_consensus"
        if fair.books < p.min_books:
            return "few_books"
        if fair.dispersion > p.max_dispersion:
            return "dispersion"
        return fair

    def _evaluate(self, ln: Linked) -> None:
        if not self.index.ready(ln):
            return
        info = ln.info
        if info.closed or not info.accepting_orders or info.market in self.ctx.catalog.resolved:
            self.stats["closed"] += 1
            return
        self.stats["evaluations"] += 1
        fair = self._fair(ln)
        if isinstance(fair, str):
            self.stats[fair] += 1
            return
        if any(self.ctx.open_orders(a) for a in info.asset_ids):  # the per-asset index
            self.stats["in_flight"] += 1
            return
        p = self.params
        started = not p.in_play and self._started(ln)
        for i, a in enumerate(info.asset_ids):
            book = self.ctx.books.get(a)
            if book is None or not book.healthy or book.crossed:
                self.stats["unhealthy_book"] += 1
                continue
            f = fair.probs[i]
            held = self.ctx.position(a)
            tick = book.tick_size or info.tick_size
            if held > 0 and self._exit(ln, a, book, f, held, tick):
                return
            if started:
                self.stats["in_play"] += 1
                continue
            if self._buy(ln, a, book, f, fair, held, tick):
                return

    def _started(self, ln: Linked) -> bool:
        """Whether the game is in play: past its start (the market's, else the odds event's
        commence time), or its linked game is live or over."""
        sp = ln.info.sports
        start = (sp.start_ts if sp is not None else 0) or (self.ctx.odds.event_teams(ln.odds_event)[3] if ln.odds_event else 0)
        if start and self.ctx.now() >= start:
            return True
        g = self.ctx.scoreboard.get(ln.game_id) if ln.game_id else None
        return g is not None and (g.live or g.ended)

    def _buy(self, ln: Linked, a: str, book: Any, f: float, fair: OddsFair, held: int, tick: int) -> bool:
        p = self.params
        info = ln.info
        ask = book.best_ask
        fu = prob_units(f)
        if not ask or fu - ask < p.min_edge:
            self.stats["no_edge"] += 1
            return False
        if fu - ask - fee_per_share(ask, info.fees) < p.min_edge:
            self.stats["fees_remove_edge"] += 1
            return False
        last = self.last_buy.get(a)
        if last is not None and self.ctx.now() - last < p.cooldown_s * NS:
            self.stats["cooldown"] += 1
            return False
        limit = buy_limit(f, p.min_edge, tick, info.fees)
        if limit < ask:
            self.stats["fees_remove_edge"] += 1
            return False
        room = p.max_position - held
        size = floor_lot(min(p.max_size, room, book.size_up_to("BUY", limit)))
        if size <= 0:
            self.stats["position_cap" if room <= 0 else "no_edge"] += 1
            return False
        if size * limit // SCALE < MIN_MARKETABLE:
            self.stats["below_min"] += 1
            return False
        confidence = max(0.0, min(1.0, 1.0 - fair.dispersion / (2 * p.max_dispersion)))
        note = f"consensus {f:.4f} of {fair.books} books (dispersion {fair.dispersion:.4f})"
        intent = OrderIntent(strategy=self.id, asset_id=a, market=info.market, side="BUY", price=limit, size=size,
                             kind="limit", tif="FAK", probability=round(f, 6), confidence=round(confidence, 6),
                             note=note)  # fmt: skip
        d = self.ctx.submit(intent)
        self.stats["orders"] += 1
        self.last_buy[a] = self.ctx.now()
        self.entry[a] = f
        self.ctx.log.info("{}: BUY {} @ {} ({}): {}", info.slug or info.market, from_units(size), from_units(limit),
                          d.action, note)  # fmt: skip
        return True

    def _exit(self, ln: Linked, a: str, book: Any, f: float, held: int, tick: int) -> bool:
        info = ln.info
        floor = sell_floor(f, self.params.exit_edge, tick, info.fees)
        if not floor or not book.best_bid or book.best_bid < floor:
            return False
        size = floor_lot(min(held, book.size_up_to("SELL", floor)))
        if size <= 0 or size * floor // SCALE < MIN_MARKETABLE:
            return False
        self.ctx.submit(OrderIntent(strategy=self.id, asset_id=a, market=info.market, side="SELL", price=floor,
                                    size=size, kind="limit", tif="FAK", reduce_only=True,
                                    note=f"edge closed: consensus {f:.4f}"))  # fmt: skip
        self.stats["exits"] += 1
        return True

    # ------------------------------------------------------------------ reporting and state

    def report(self) -> dict[str, Any]:
        return {"stats": dict(self.stats), "unmatched": dict(sorted(self.index.unmatched.items())),
                "entries": {a: round(f, 6) for a, f in sorted(self.entry.items())}}  # fmt: skip

    def snapshot(self) -> Any:
        return {"links": self.index.to_state(), "last_buy": dict(sorted(self.last_buy.items())),
                "entry": dict(sorted(self.entry.items())), "stats": dict(self.stats)}  # fmt: skip

    def restore(self, state: Any) -> None:
        self.index.restore_links(state.get("links", []), self.ctx.catalog)
        for ln in self.index.linked.values():
            self.watch(ln)
        self.last_buy = {a: int(t) for a, t in state.get("last_buy", {}).items()}
        self.entry = {a: float(f) for a, f in state.get("entry", {}).items()}
        self.stats.update({k: int(v) for k, v in state.get("stats", {}).items() if k in self.stats})
