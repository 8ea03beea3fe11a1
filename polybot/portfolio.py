"""Positions, cost basis, PnL, cash and binary-market pairs from fills, exact in base units.

Accounting (average cost, per asset, for the whole account and per strategy):

* a position stores integer totals only: shares ``size`` and the open position's cost basis
  ``cost``; the average price is derived when needed (``cost / size``), never stored rounded;
* a buy adds shares and its notional to the cost; a sell realises
  ``proceeds - cost x sold / size`` (the basis taken out is rounded down, so the remainder stays
  in the cost of what is still held and a position that goes flat has a cost of exactly 0);
* fees (collateral on CLOB V2) and maker rebates (``FillEvent.rebate``) are kept apart from the
  realized PnL, which is *before* fees;
* settlement (:meth:`Portfolio.resolve`) redeems the winner at 1 and the loser at 0, books the
  difference to the cost as realized PnL and credits the payout to cash.

Rounding, one rule: the collateral of a fill is ``notional = floor(price x size / 1e6)`` for a
buy (what it pays) as for a sell (what it receives) -- the venue's fill math
(``counterAmount = floor(makerFill x takerAmount / makerAmount)``) and :attr:`Order.cost` do the
same. Cash and cost basis use that one number, so with ``unrealized = mark value - cost``

    cash - starting_cash + sum(mark value) == realized + unrealized - fees + rebates

holds *exactly*, for the whole account, each strategy and each market (``mark value`` of an
unpaired holding is ``floor(mark x size / 1e6)``; a matched YES+NO pair is worth exactly 1).

Binary markets (two assets, outcome 0 = YES/Up and 1 = NO/Down, from the catalog's
``MarketInfo.asset_ids``; the portfolio reads the catalog given as ``Portfolio(catalog=...)``
or :meth:`Portfolio.set_catalog`): quantities and costs of each side, the pair cost
``cost_yes/qty_yes + cost_no/qty_no`` (decided exactly by cross-multiplication in
:meth:`Portfolio.pair_cost_below`; :meth:`Portfolio.pair_cost` is a display value rounded up),
the locked profit ``floor(min(qty) x (1 - pair cost)) - fees`` and the unpaired delta
``qty_yes - qty_no``.

Marking: matched YES+NO pairs at 1 (they merge into one unit of collateral); the unpaired
remainder of each asset at a mark price from ``mark_fn(asset_id) -> int | None`` (``None`` = no
mark = 0). :func:`book_marks` builds one from the kernel's books: the best bid (``"bid"``, the
default: what a position could be sold for; no bid = 0) or the mid (``"mid"``).

Scopes: ``strategy=None`` (or ``""``) is the whole account, where the average cost is over all
strategies' fills and pairs form across strategies; a strategy name is that strategy's own
book. The two need not add up (average cost and pairing are not additive); cash does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import attrs

from .events import FillEvent, MarketPosition, MarketResolved, PnLUpdate
from .units import SCALE

if TYPE_CHECKING:  # pragma: no cover
    from .book import Books
    from .catalog import Catalog

#: ``mark_fn(asset_id) -> mark price in base units, or None (no mark: valued at 0)``
MarkFn = Callable[[str], "int | None"]
MarkMode = Literal["bid", "mid"]
MARK_MODES: tuple[str, ...] = ("bid", "mid")


def book_marks(books: Books, mode: str = "bid") -> MarkFn:
    """A mark function reading the kernel's books at call time.

    ``"bid"``: the best bid (0 when the bid side is empty). ``"mid"``: ``(bid + ask) // 2`` when
    both sides exist, else the best bid (0 without one: an ask alone is not a price anyone pays).
    An asset without a book has no mark (``None``, valued at 0)."""
    get = books.get
    if mode == "bid":

        def bid(asset_id: str) -> int | None:
            b = get(asset_id)
            return None if b is None else b.best_bid

        return bid
    if mode == "mid":

        def mid(asset_id: str) -> int | None:
            b = get(asset_id)
            if b is None:
                return None
            bb, ba = b.best_bid, b.best_ask
            return (bb + ba) // 2 if bb and ba else bb

        return mid
    raise ValueError(f"mark must be one of {MARK_MODES}, not {mode!r}")


@attrs.define
class Position:
    asset_id: str
    market: str = ""
    size: int = 0  # shares held, base units
    cost: int = 0  # cost basis of the open size, base units
    realized: int = 0  # realized PnL before fees
    fees: int = 0
    bought: int = 0
    sold: int = 0
    rebates: int = 0

    @property
    def avg_price(self) -> int:
        """Average cost per share, rounded down (display only)."""
        return self.cost * SCALE // self.size if self.size else 0

    @property
    def net_realized(self) -> int:
        return self.realized - self.fees + self.rebates

    @property
    def cash_flow(self) -> int:
        """Collateral this position moved (fills, fees, rebates, settlement): always equal to
        ``realized - cost - fees + rebates``."""
        return self.realized - self.cost - self.fees + self.rebates

    def mark_value(self, mark: int) -> int:
        return mark * self.size // SCALE

    def unrealized(self, mark: int) -> int:
        return mark * self.size // SCALE - self.cost

    def apply_fill(self, side: str, price: int, size: int, fee: int, rebate: int = 0) -> int:
        """Apply one fill; returns the cash it moved (``-notional`` for a buy, ``+notional``
        for a sell, then ``- fee + rebate``)."""
        total = notional = price * size // SCALE
        self.fees += fee
        self.rebates += rebate
        if side == "BUY":
            self.bought += size
            if self.size < 0:  # covering a short (never on Polymarket; kept exact anyway)
                closed = min(size, -self.size)
                paid = notional if closed == size else price * closed // SCALE
                basis = self.cost * closed // -self.size  # what was received for them (<= 0)
                self.realized += -basis - paid
                self.cost -= basis
                self.size += closed
                size -= closed
                notional -= paid
            self.size += size
            self.cost += notional
            return rebate - fee - total
        self.sold += size
        if self.size > 0:
            closed = min(size, self.size)
            proceeds = notional if closed == size else price * closed // SCALE
            basis = self.cost * closed // self.size
            self.realized += proceeds - basis
            self.cost -= basis
            self.size -= closed
            size -= closed
            notional -= proceeds
        if size:  # selling more than held (never on Polymarket): a short with a negative basis
            self.size -= size
            self.cost -= notional
        return total - fee + rebate

    def burn(self, size: int) -> int:
        """Remove ``size`` shares (at most the position) with their share of the cost basis,
        which is returned (no PnL is booked here: :meth:`Portfolio.exchange` does)."""
        size = min(size, self.size)
        if size <= 0:
            return 0
        basis = self.cost if size == self.size else self.cost * size // self.size
        self.cost -= basis
        self.size -= size
        return basis

    def settle(self, payout_per_share: int) -> int:
        """Resolution: the position is redeemed at ``payout_per_share`` (SCALE or 0); returns
        the cash paid out."""
        paid = payout_per_share * self.size // SCALE
        self.realized += paid - self.cost
        self.size = 0
        self.cost = 0
        return paid

    def to_state(self) -> dict:
        return attrs.asdict(self)


class MarketValue(NamedTuple):
    """One market's figures in one scope (base units). ``value`` is the mark value (pairs at 1,
    the unpaired rest at its mark); ``unrealized = value - cost``; ``equity`` is realized +
    unrealized - fees + rebates, which is also the cash the market moved plus its value."""

    value: int = 0
    cost: int = 0
    realized: int = 0
    fees: int = 0
    rebates: int = 0

    @property
    def unrealized(self) -> int:
        return self.value - self.cost

    @property
    def equity(self) -> int:
        return self.realized + self.value - self.cost - self.fees + self.rebates


class PairView(NamedTuple):
    """The two sides of a binary market in one scope (base units)."""

    qty_yes: int = 0
    qty_no: int = 0
    cost_yes: int = 0
    cost_no: int = 0
    fees: int = 0
    rebates: int = 0

    @property
    def pairs(self) -> int:
        """Matched YES+NO shares (each pair redeems to exactly 1)."""
        return min(self.qty_yes, self.qty_no) if self.qty_yes > 0 and self.qty_no > 0 else 0

    @property
    def unpaired(self) -> int:
        return self.qty_yes - self.qty_no

    def pair_cost_below(self, limit_price: int) -> bool:
        """``cost_yes/qty_yes + cost_no/qty_no < limit_price/1e6``, decided exactly (False when
        a side is not held: there is no pair cost)."""
        qy, qn = self.qty_yes, self.qty_no
        if qy <= 0 or qn <= 0:
            return False
        return (self.cost_yes * qn + self.cost_no * qy) * SCALE < limit_price * qy * qn

    @property
    def pair_cost(self) -> int:
        """avg YES + avg NO in base units, rounded up (display; 0 when a side is not held)."""
        qy, qn = self.qty_yes, self.qty_no
        if qy <= 0 or qn <= 0:
            return 0
        return -(-(self.cost_yes * qn + self.cost_no * qy) * SCALE // (qy * qn))

    @property
    def locked_profit(self) -> int:
        """``floor(pairs x (1 - pair cost)) - fees``, exact (``-fees`` when nothing is paired)."""
        qy, qn = self.qty_yes, self.qty_no
        pairs = self.pairs
        if not pairs:
            return -self.fees
        num = pairs * (qy * qn - self.cost_yes * qn - self.cost_no * qy)
        return num // (qy * qn) - self.fees


def _pair_value(qy: int, qn: int, yes: str, no: str, mark_fn: MarkFn) -> int:
    """Mark value of holdings ``qy`` YES and ``qn`` NO: pairs at 1, the rest at its mark."""
    pairs = min(qy, qn) if qy > 0 and qn > 0 else 0
    v = pairs
    if qy != pairs:
        v += (mark_fn(yes) or 0) * (qy - pairs) // SCALE
    if qn != pairs:
        v += (mark_fn(no) or 0) * (qn - pairs) // SCALE
    return v


class Portfolio:
    """Positions by asset (all strategies) and by (strategy, asset), cash and PnL.

    ``starting_cash`` is the collateral at the start (base units); ``catalog`` gives the binary
    markets' two assets (pairing, marking pairs at 1, :meth:`market_position`); without one
    every asset is marked on its own. ``mark`` is the default mark mode of :meth:`marks`.
    """

    def __init__(self, starting_cash: int = 0, catalog: Catalog | None = None, mark: str = "bid") -> None:
        if mark not in MARK_MODES:
            raise ValueError(f"mark must be one of {MARK_MODES}, not {mark!r}")
        self.starting_cash = starting_cash
        self.catalog = catalog
        self.mark = mark
        self.positions: dict[str, Position] = {}
        self.by_strategy: dict[tuple[str, str], Position] = {}
        self._strat: dict[str, dict[str, Position]] = {}  # strategy -> asset -> position
        self.cash_delta = 0  # collateral moved by fills, fees, rebates and settlements

    # ------------------------------------------------------------------ wiring and lookups

    def set_catalog(self, catalog: Catalog | None) -> None:
        self.catalog = catalog

    @property
    def cash(self) -> int:
        """starting cash - buys' notional - fees + sells' proceeds + rebates + settlements."""
        return self.starting_cash + self.cash_delta

    def market_of(self, asset_id: str, default: str = "") -> str:
        """The market of an asset: the catalog's, else the one its fills stated, else
        ``default``. This is the key of :meth:`market_values`."""
        p = self.positions.get(asset_id)
        fallback = p.market if p is not None and p.market else default
        return self.catalog.market_of(asset_id, fallback) if self.catalog is not None else fallback

    def marks(self, books: Books, mode: str | None = None) -> MarkFn:
        """:func:`book_marks` with this portfolio's mark mode (or ``mode``). The shares of a
        resolved market that are not redeemed yet are marked at their payout (1 for the
        winner, 0 otherwise), not at a book that no longer trades."""
        fn = book_marks(books, mode or self.mark)
        cat = self.catalog
        if cat is None or not cat.resolved:
            return fn
        resolved, for_asset = cat.resolved, cat.for_asset

        def mark(asset_id: str) -> int | None:
            info = for_asset(asset_id)
            if info is not None:
                winner = resolved.get(info.market)
                if winner is not None:
                    return SCALE if asset_id == winner else 0
            return fn(asset_id)

        return mark

    def get(self, asset_id: str) -> Position | None:
        return self.positions.get(asset_id)

    def size(self, asset_id: str, strategy: str | None = None) -> int:
        p = self.positions.get(asset_id) if strategy is None else self.by_strategy.get((strategy, asset_id))
        return p.size if p else 0

    def strategies(self) -> list[str]:
        """Strategies that ever held a position, sorted."""
        return sorted(self._strat)

    def _scope(self, strategy: str | None) -> dict[str, Position]:
        if not strategy:
            return self.positions
        return self._strat.get(strategy) or {}

    # ------------------------------------------------------------------ fills and settlement

    def apply_fill(self, strategy: str, f: FillEvent) -> Position:
        """Apply a fill to the account's position and the strategy's; returns the account's."""
        aid = f.asset_id
        p = self.positions.get(aid)
        if p is None:
            market = f.market
            if not market and self.catalog is not None:
                info = self.catalog.for_asset(aid)
                market = info.market if info is not None else ""
            p = self.positions[aid] = Position(aid, market)
        elif f.market and not p.market:
            p.market = f.market
        self.cash_delta += p.apply_fill(f.side, f.price, f.size, f.fee, f.rebate)
        sp = self.by_strategy.get((strategy, aid))
        if sp is None:
            sp = self.by_strategy[(strategy, aid)] = Position(aid, p.market)
            self._strat.setdefault(strategy, {})[aid] = sp
        elif p.market and not sp.market:
            sp.market = p.market
        sp.apply_fill(f.side, f.price, f.size, f.fee, f.rebate)
        return p

    def settle(self, ev: MarketResolved) -> list[tuple[str, Position]]:
        """Settle a resolved market: every open position in its assets (``ev.asset_ids``, else
        the catalog's) is redeemed at 1 (the winner) or 0, for the account and per strategy.
        Returns what changed: ``("", account position)`` entries first (in asset order), then
        ``(strategy, position)`` entries sorted by strategy. Cash is credited once (account)."""
        aids: Iterable[str] = ev.asset_ids
        if not aids and self.catalog is not None:
            info = self.catalog.market(ev.market)
            aids = info.asset_ids if info is not None else ()
        out: list[tuple[str, Position]] = []
        for aid in aids:
            p = self.positions.get(aid)
            if p is not None and p.size:
                self.cash_delta += p.settle(SCALE if aid == ev.winning_asset_id else 0)
                out.append(("", p))
        for s in sorted(self._strat):
            held = self._strat[s]
            for aid in aids:
                sp = held.get(aid)
                if sp is not None and sp.size:
                    sp.settle(SCALE if aid == ev.winning_asset_id else 0)
                    out.append((s, sp))
        return out

    def exchange(self, strategy: str, burns: Sequence[tuple[str, int]], mints: Sequence[tuple[str, int]],
                 collateral: int, market: str = "") -> list[tuple[str, Position]]:  # fmt: skip
        """An on-chain conversion of ``strategy``'s shares, applied to its positions and the
        account's: ``burns`` shares go, ``mints`` shares come, ``collateral`` is received
        (negative: spent). A merge burns one share of each outcome for 1; a split spends 1
        for one of each; a neg-risk convert burns NOs for collateral and the other YESes.

        Cost basis moves with value: the minted shares carry what the burnt basis and the
        spent collateral exceed the collateral received (``max(B - C, 0)``, split over them by
        size), and the burnt shares realize the rest (``C - B + minted cost``, shared by their
        basis): a merge realizes ``1 - pair cost`` per pair, a split realizes nothing. Cash
        moves by ``collateral`` exactly once. Returns the positions that changed (account
        entries first, as :meth:`settle`)."""
        out: list[tuple[str, Position]] = []
        for scope in ("", strategy) if strategy else ("",):
            held = self.positions if not scope else self._strat.setdefault(scope, {})
            burnt: list[tuple[Position, int, int]] = []  # position, size, basis
            for aid, size in burns:
                p = held.get(aid)
                if p is None or size <= 0:
                    continue
                n = min(size, p.size)
                burnt.append((p, n, p.burn(n)))
            basis = sum(b for _, _, b in burnt)
            total_mint = sum(n for _, n in mints if n > 0)
            minted_cost = max(basis - collateral, 0) if total_mint else 0
            realized = collateral - basis + minted_cost
            # the burnt shares realize the result, shared by basis (by size when free)
            weights = [b for _, _, b in burnt] if basis > 0 else [n for _, n, _ in burnt]
            wsum = sum(weights)
            proceeds = realized + basis  # what the burnt shares fetched
            left = proceeds
            for i, (p, _n, b) in enumerate(burnt):
                share = left if i == len(burnt) - 1 else (proceeds * weights[i] // wsum if wsum else 0)
                left -= share
                p.realized += share - b
                out.append((scope, p))
            if not burnt and realized:  # nothing burnt (a split): nothing to realize on
                minted_cost += realized
            left = minted_cost
            todo = [(aid, n) for aid, n in mints if n > 0]
            for i, (aid, n) in enumerate(todo):
                p = held.get(aid)
                if p is None:
                    mk = market or (self.catalog.market_of(aid, "") if self.catalog is not None else "")
                    p = held[aid] = Position(aid, mk)
                    if scope:
                        self.by_strategy[(scope, aid)] = p
                c = left if i == len(todo) - 1 else minted_cost * n // total_mint
                left -= c
                p.size += n
                p.cost += c
                out.append((scope, p))
        self.cash_delta += collateral
        return out

    def resolve(self, ev: MarketResolved) -> list[Position]:
        """:meth:`settle`, returning the account positions that changed (per-strategy
        positions are settled too)."""
        return [p for s, p in self.settle(ev) if not s]

    # ------------------------------------------------------------------ realized figures

    def realized_pnl(self, strategy: str | None = None) -> int:
        """Realized PnL net of fees and rebates (``realized - fees + rebates``)."""
        return sum(p.net_realized for p in self._scope(strategy).values())

    def fees_paid(self, strategy: str | None = None) -> int:
        return sum(p.fees for p in self._scope(strategy).values())

    def rebates_earned(self, strategy: str | None = None) -> int:
        return sum(p.rebates for p in self._scope(strategy).values())

    def cash_flow(self, strategy: str | None = None) -> int:
        """Collateral moved by a scope's fills, fees, rebates and settlements (no starting
        cash); for the whole account this is :attr:`cash_delta`."""
        return sum(p.cash_flow for p in self._scope(strategy).values())

    # ------------------------------------------------------------------ binary markets

    def pair_view(self, market: str, strategy: str | None = None) -> PairView:
        """YES/NO quantities and costs of a binary market (zeros for an unknown or
        non-binary market)."""
        cat = self.catalog
        info = cat.market(market) if cat is not None else None
        if info is None or len(info.asset_ids) != 2:
            return PairView()
        held = self._scope(strategy)
        y = held.get(info.asset_ids[0])
        n = held.get(info.asset_ids[1])
        if y is None:
            y = Position("")
        if n is None:
            n = Position("")
        return PairView(y.size, n.size, y.cost, n.cost, y.fees + n.fees, y.rebates + n.rebates)

    def pair_cost_below(self, market: str, limit_price: int, strategy: str | None = None) -> bool:
        """True if avg YES + avg NO < ``limit_price`` exactly (integers, cross-multiplied);
        False when a side is not held."""
        return self.pair_view(market, strategy).pair_cost_below(limit_price)

    def pair_cost(self, market: str, strategy: str | None = None) -> int:
        """avg YES + avg NO, rounded up to a base unit (display; 0 when a side is not held)."""
        return self.pair_view(market, strategy).pair_cost

    def locked_profit(self, market: str, strategy: str | None = None) -> int:
        return self.pair_view(market, strategy).locked_profit

    def unpaired(self, market: str, strategy: str | None = None) -> int:
        return self.pair_view(market, strategy).unpaired

    def market_position(self, market: str, strategy: str = "", ts: int = 0) -> MarketPosition:
        v = self.pair_view(market, strategy)
        return MarketPosition(ts=ts, market=market, strategy=strategy, qty_yes=v.qty_yes, qty_no=v.qty_no,
                              cost_yes=v.cost_yes, cost_no=v.cost_no, pair_cost=v.pair_cost,
                              locked_profit=v.locked_profit, unpaired=v.unpaired, fees=v.fees)  # fmt: skip

    # ------------------------------------------------------------------ marking

    def market_values(self, mark_fn: MarkFn, strategy: str | None = None) -> dict[str, MarketValue]:
        """Every market of a scope (key: :meth:`market_of`) with its mark value, cost, realized
        PnL, fees and rebates. Binary markets in the catalog mark matched pairs at 1."""
        cat = self.catalog
        acc: dict[str, list[int]] = {}
        binary: dict[str, Any] = {}
        for aid, p in self._scope(strategy).items():
            info = cat.for_asset(aid) if cat is not None else None
            key = info.market if info is not None else p.market
            a = acc.get(key)
            if a is None:
                a = acc[key] = [0, 0, 0, 0, 0]
            a[1] += p.cost
            a[2] += p.realized
            a[3] += p.fees
            a[4] += p.rebates
            if not p.size:
                continue
            if info is not None and len(info.asset_ids) == 2:
                binary[key] = info
            else:
                a[0] += (mark_fn(aid) or 0) * p.size // SCALE
        if binary:
            held = self._scope(strategy)
            for key, info in binary.items():
                y, n = info.asset_ids
                py, pn = held.get(y), held.get(n)
                acc[key][0] += _pair_value(py.size if py else 0, pn.size if pn else 0, y, n, mark_fn)
        return {k: MarketValue(*v) for k, v in acc.items()}

    def _market_value(self, mark_fn: MarkFn, strategy: str | None, market: str) -> MarketValue:
        cat = self.catalog
        info = cat.market(market) if cat is not None else None
        if info is not None:  # O(1): the market's own assets
            held = self._scope(strategy)
            ps = [(aid, held[aid]) for aid in info.asset_ids if aid in held]
            cost = sum(p.cost for _, p in ps)
            realized = sum(p.realized for _, p in ps)
            fees = sum(p.fees for _, p in ps)
            rebates = sum(p.rebates for _, p in ps)
            if len(info.asset_ids) == 2:
                y, n = info.asset_ids
                py, pn = held.get(y), held.get(n)
                value = _pair_value(py.size if py else 0, pn.size if pn else 0, y, n, mark_fn)
            else:
                value = sum((mark_fn(aid) or 0) * p.size // SCALE for aid, p in ps if p.size)
            return MarketValue(value, cost, realized, fees, rebates)
        return self.market_values(mark_fn, strategy).get(market) or MarketValue()

    def mark_value(self, mark_fn: MarkFn, strategy: str | None = None, market: str | None = None) -> int:
        """What the open positions are worth: pairs at 1, the unpaired rest at its mark."""
        if market is not None:
            return self._market_value(mark_fn, strategy, market).value
        return sum(v.value for v in self.market_values(mark_fn, strategy).values())

    def unrealized(self, mark_fn: MarkFn, strategy: str | None = None, market: str | None = None) -> int:
        """Mark value - cost basis of the open positions."""
        if market is not None:
            return self._market_value(mark_fn, strategy, market).unrealized
        return sum(v.value - v.cost for v in self.market_values(mark_fn, strategy).values())

    def equity(self, mark_fn: MarkFn, strategy: str | None = None, market: str | None = None) -> int:
        """realized + unrealized - fees + rebates (= cash moved + mark value)."""
        if market is not None:
            return self._market_value(mark_fn, strategy, market).equity
        return sum(v.equity for v in self.market_values(mark_fn, strategy).values())

    def pnl(self, strategy: str = "", mark_fn: MarkFn | None = None, ts: int = 0) -> PnLUpdate:
        """PnL of the account (``""``) or of a strategy. Without ``mark_fn`` nothing is marked
        (``unrealized`` = 0). ``cash`` is the account's cash (with the starting balance) or the
        collateral a strategy's own fills, fees, rebates and settlements moved."""
        ps = self._scope(strategy).values()
        realized = sum(p.realized for p in ps)
        fees = sum(p.fees for p in ps)
        rebates = sum(p.rebates for p in ps)
        unrealized = self.unrealized(mark_fn, strategy) if mark_fn is not None else 0
        cash = self.cash if not strategy else sum(p.cash_flow for p in ps)
        return PnLUpdate(ts=ts, strategy=strategy, realized=realized, unrealized=unrealized, fees=fees,
                         rebates=rebates, net=realized + unrealized - fees + rebates, cash=cash)  # fmt: skip

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict:
        return {
            "starting_cash": self.starting_cash,
            "positions": [self.positions[k].to_state() for k in sorted(self.positions)],
            "by_strategy": [
                [s, a, self.by_strategy[(s, a)].to_state()] for s, a in sorted(self.by_strategy)
            ],
            "cash_delta": self.cash_delta,
        }

    def restore(self, st: dict) -> None:
        """Load a :meth:`to_state` (one from before starting cash and rebates loads too)."""
        self.starting_cash = st.get("starting_cash", self.starting_cash)
        self.positions = {p["asset_id"]: Position(**p) for p in st["positions"]}
        self.by_strategy = {(s, a): Position(**p) for s, a, p in st["by_strategy"]}
        self._strat = {}
        for (s, a), p in self.by_strategy.items():
            self._strat.setdefault(s, {})[a] = p
        self.cash_delta = st["cash_delta"]
