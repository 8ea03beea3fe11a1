"""The shared plumbing of strategies that trade sports markets: a :class:`SportsIndex` fed by
the catalog and re-linked as games and bookmaker events appear, book and fill subscriptions for
every token of a linked market (only those: other books cost nothing), cancels on resolution and
at stop. A subclass sets up its index in :meth:`SportsStrategy.start_sports` and defines
``on_book``; ``live_arbitrage`` and ``statistical_edge`` are built on it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..events import BookDelta, BookSnapshot, FillEvent, MarketInfo, MarketResolved, OddsQuote
from ..strategy import Strategy
from .markets import Linked, SportsIndex

__all__ = ["SportsStrategy"]


class SportsStrategy(Strategy):
    """Base class (not a strategy by itself). ``self.stats["fills"]`` counts fills of the
    watched tokens."""

    index: SportsIndex
    stats: dict[str, int]
    #: the subclass's handler of book changes of the watched tokens
    on_book: Callable[[BookSnapshot | BookDelta], None]

    def start_sports(self, markets: Sequence[str], market_types: Sequence[str], *, need_game: bool, need_odds: bool,
                     aliases: Mapping[str, str]) -> None:  # fmt: skip
        """Create the index, subscribe to markets, odds and resolutions, and take the markets
        the catalog already has (call from ``on_start``, after ``self.stats`` exists)."""
        self.index = SportsIndex(markets, market_types, need_game=need_game, need_odds=need_odds, aliases=aliases,
                                 log=self.ctx.log)  # fmt: skip
        self.watched: set[str] = set()
        ctx = self.ctx
        ctx.subscribe(MarketInfo, self.on_market)
        ctx.subscribe(OddsQuote, self.on_odds)
        ctx.subscribe(MarketResolved, self.on_resolved)
        for info in sorted(ctx.catalog, key=lambda i: i.market):
            self.on_market(info)

    def on_stop(self) -> None:
        for o in self.ctx.open_orders():
            self.ctx.cancel(o.client_id, "stop")

    def on_market(self, ev: MarketInfo) -> None:
        ln = self.index.add(ev, self.ctx.scoreboard, self.ctx.odds)
        if ln is not None:
            self.watch(ln)

    def relink(self) -> None:
        """Link what is still unlinked when a board learned a new game or event (cheap
        otherwise), and watch what became ready."""
        idx = self.index
        if idx.unmatched or len(self.ctx.odds.events()) != idx._events_seen or len(self.ctx.scoreboard) != idx._games_seen:
            idx.refresh(self.ctx.scoreboard, self.ctx.odds)
            for ln in idx.linked.values():  # an odds event may have placed a market's outcomes
                self.watch(ln)

    def on_odds(self, ev: OddsQuote) -> None:
        self.relink()

    def on_fill(self, ev: FillEvent) -> None:
        self.stats["fills"] += 1

    def on_resolved(self, ev: MarketResolved) -> None:
        ln = self.index.linked.get(ev.market)
        if ln is not None:
            for a in ln.info.asset_ids:
                for o in self.ctx.open_orders(a):
                    self.ctx.cancel(o.client_id, "market resolved")

    def watch(self, ln: Linked) -> None:
        """Subscribe to the books and fills of a ready market's tokens (once)."""
        if not self.index.ready(ln):
            return
        for a in ln.info.asset_ids:
            if a not in self.watched:
                self.watched.add(a)
                self.ctx.subscribe(BookSnapshot, self.on_book, key=a)
                self.ctx.subscribe(BookDelta, self.on_book, key=a)
                self.ctx.subscribe(FillEvent, self.on_fill, key=a)
