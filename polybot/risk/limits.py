"""Risk validators that bound how much may be at stake: notional and worst-case-loss caps,
position caps, loss limits (daily loss, drawdown) and order sizing.

Every validator is a small attrs class with a ``name`` (its registry name, see
:data:`VALIDATORS`) and keyword parameters in human units, as written in the TOML
``[risk.validators.<name>]`` table: money, prices and share counts as decimal strings or numbers
(``"300"``, ``300``, ``0.25``; converted exactly to 6-decimal base units, more decimals are
refused), checked in ``__attrs_post_init__`` (``ValueError("<param>: ...")``). A cap of 0 (or
None) means "no cap".

Caps (:class:`NotionalCaps`, :class:`PositionCaps`) **resize** an order down to the largest size
(a multiple of the 0.01-share lot) that fits every cap, and reject it only when that size is 0 or
below the market's minimum order size (``MarketInfo.min_order_size``, 5 shares without a catalog
entry), or when the limit is a count (``max_open_positions``). Orders that do not make the worst
case worse pass the caps (see each class).

``scope = "account"`` (the default) measures the whole account (every strategy's positions and
open orders); ``scope = "strategy"`` measures only the submitting strategy's own.

The stateful ones (:class:`LossLimits`, :class:`Sizing` in volatility mode) subscribe to the
kernel's bus in ``attach(kernel)`` at :data:`~polybot.bus.PRIORITY_KERNEL` and keep their state in
``to_state()`` / ``restore(state)`` (JSON-able; kernel time only, never the wall clock).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import msgspec

from ..bus import PRIORITY_KERNEL
from ..events import BookDelta, BookSnapshot, FeeSchedule, MarketInfo, OrderIntent, PnLUpdate, TradingStateChanged
from ..units import SCALE, from_units
from ..params import bool_param as _bool
from ..params import cap_param as _units
from ..params import choice_param as _choice
from ..params import count_param
from ..params import name_param as _name
from ..params import ratio_param as _ratio
from ..params import short_id as _short
from .chain import APPROVE, LOT, Decision, RiskContext, intent_loss, reject, resize

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel

__all__ = [
    "DEFAULT_MIN_SIZE", "LossLimits", "NotionalCaps", "PositionCaps", "Sizing", "VALIDATORS",
    "fit_size", "intent_loss",
]  # fmt: skip

#: The minimum order size when the catalog does not state one (5 shares).
DEFAULT_MIN_SIZE = 5_000_000
_NS = 1_000_000_000
SCOPES = ("account", "strategy")
GROUP_BY = ("event", "underlying")
SIZING_MODES = ("fixed", "kelly", "volatility")


# --------------------------------------------------------------------------------------------
# Parameter conversion (human units -> base units), each error naming its parameter
# --------------------------------------------------------------------------------------------
















# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _count_cap(param: str, v: Any) -> int:
    return count_param(param, v, cap=True)


def _fmt(v: int) -> str:
    """Money, prices and shares for people: 312500000 -> "312.5"."""
    return from_units(v)




def _scope(scope: str, ctx: RiskContext) -> str | None:
    """The helpers' scope argument: None = the whole account, else the submitting strategy."""
    return (ctx.strategy or None) if scope == "strategy" else None


def _scope_label(scope: str | None) -> str:
    return f"strategy {scope}" if scope else "account"


def _min_size(ctx: RiskContext, asset_id: str) -> int:
    info = ctx.info(asset_id)
    return int(info.min_order_size) if info is not None and info.min_order_size else DEFAULT_MIN_SIZE


def _fees(ctx: RiskContext, asset_id: str) -> FeeSchedule | None:
    info = ctx.info(asset_id)
    return info.fees if info is not None else None


def _covered_reduce(intent: OrderIntent, ctx: RiskContext, scope: str | None) -> bool:
    """A ``reduce_only`` SELL of no more than the scope holds (what a flatten submits)."""
    if not intent.reduce_only or intent.side != "SELL":
        return False
    return 0 < intent.size <= ctx.portfolio.size(intent.asset_id, scope)


def fit_size(side: str, price: int, fees: FeeSchedule | None, budget: int, limit: int) -> int:
    """The largest multiple of the lot ``s <= limit`` with ``intent_loss(s) <= budget`` (0 when
    not even one lot fits).

    The loss grows linearly with the size, up to rounding: a BUY costs ``ceil(p s) + fee`` with
    ``fee >= s r`` (``r`` the exact fee per share, rate x (p(1-p))**exponent), so every size that
    fits has ``s <= budget / (p + r)``; a SELL costs ``ceil((1-p) s)`` plus its (floored) fee,
    so every size that fits has ``s <= budget / (1 - p + r)``. The bound is solved in integers and rounded down to the lot, then
    checked with the exact function, stepping one lot at a time (the rounding is worth less than
    a lot, so this takes at most a step or two)."""
    if budget < 0 or limit < LOT:
        return 0
    S = SCALE
    if side == "BUY":
        if price <= 0:
            s = limit
        elif fees is None or fees.rate_ppm <= 0:
            s = budget * S // price
        else:
            e = fees.exponent
            r_num = fees.rate_ppm * (price * (S - price)) ** e  # fee per share = r_num / r_den
            r_den = S * (S * S) ** e
            s = budget * S * r_den // (price * r_den + r_num * S)
    elif fees is None or fees.rate_ppm <= 0:
        s = limit if price >= S else budget * S // (S - price)
    else:  # (1 - p) per share plus the taker fee on the proceeds
        e = fees.exponent
        r_num = fees.rate_ppm * (price * (S - price)) ** e
        r_den = S * (S * S) ** e
        s = budget * S * r_den // ((S - price) * r_den + r_num * S)
    s = min(s, limit) // LOT * LOT

    def loss(n: int) -> int:
        return intent_loss(side, price, n, fees)

    for _ in range(1000):  # never more than a couple of steps; bounded all the same
        if s <= 0 or loss(s) <= budget:
            break
        s -= LOT
    else:  # pragma: no cover - the bound above makes this unreachable
        return 0
    for _ in range(1000):
        if s + LOT > limit or loss(s + LOT) > budget:
            break
        s += LOT
    return max(s, 0)


class _Bound(NamedTuple):
    """One cap's verdict on an order: the largest size that fits and why it binds."""

    size: int
    reason: str
    verify: Callable[[int], bool] | None = None  # re-checks a candidate size with the helpers


def _finish(name: str, intent: OrderIntent, ctx: RiskContext, bounds: list[_Bound]) -> Decision:
    """Resize to the smallest size every bound allows (re-verified), or reject when that is
    nothing or below the market minimum."""
    if not bounds:
        return APPROVE
    binding = min(bounds, key=lambda b: b.size)
    size = binding.size
    for _ in range(100):  # verification with the helpers (agrees with the solve; bounded anyway)
        if size <= 0 or all(b.verify is None or b.verify(size) for b in bounds):
            break
        size -= LOT
    else:  # pragma: no cover
        size = 0
    if size >= intent.size:
        return APPROVE
    minimum = _min_size(ctx, intent.asset_id)
    if size <= 0:
        return reject(name, f"{binding.reason}: no order fits")
    if size < minimum:
        return reject(name, f"{binding.reason}: the largest order that fits, {_fmt(size)} shares, is below "
                            f"the market minimum {_fmt(minimum)}")  # fmt: skip
    return resize(name, size, f"{binding.reason}: resized to {_fmt(size)} shares")


# --------------------------------------------------------------------------------------------
# notional_caps
# --------------------------------------------------------------------------------------------


@attrs.define
class NotionalCaps:
    """Caps on money at stake (all in collateral; 0 = no cap):

    * ``per_order``: the order's notional, price x size;
    * ``per_asset``: the asset's position cost + its open BUY orders' exposure (cost at the limit
      with the taker fee) + the order (a SELL adds nothing here);
    * ``per_market``: the market's worst-case loss with the order (:meth:`RiskContext.market_loss`);
    * ``per_group``: the sum of the worst-case losses of the markets of the order's group, among
      the scope's active markets and the order's own. ``group_by = "event"``: one neg-risk event
      or one game (``MarketInfo.neg_risk_market_id``, else ``event_id``); ``"underlying"``: the
      first dash-separated token of ``MarketInfo.series``, else of ``slug`` (``btc`` for
      ``btc-updown-15m-...``: BTC's 5m, 15m and 1h series share one cap). A market without a
      group key (or a catalog entry) is a group of its own. The markets of one neg-risk event
      are not summed but counted jointly (:meth:`group_loss`: at most one of them resolves YES),
      so a NO basket across the event is capped at what it can really lose;
    * ``total``: the sum of the worst-case losses of every active market of the scope, with the
      order (:meth:`RiskContext.total_loss`);
    * ``max_open_positions``: the number of assets with a position or an open BUY in scope,
      counting the order's asset if it is a BUY that opens a new one (a count: rejects, never
      resizes).

    An order that does not increase its market's worst-case loss (a hedge, a sale of what is
    held) passes every cap. A loss cap already exceeded (a fill or a price move can do that) lets
    through only what keeps the loss where it is.

    Resizing is exact: the order's contribution ``x(s)`` to the worst case is linear in the size
    up to rounding (:func:`fit_size`), and a loss with the order is ``max(A + x, U)`` (``A`` the
    outcomes the order hurts, ``U`` the rest and the other markets), so from the loss ``W``
    without the order and ``F`` with it (``F > W`` means the hurt outcomes decide:
    ``A = F - x(size)``) the budget is ``max(cap, W) - A``; the size is then checked again with
    the helpers.
    """

    skip_reducing = True  # a flatten's reduce-only sells pass (RiskChain)

    per_order: Any = 0
    per_asset: Any = 0
    per_market: Any = 0
    per_group: Any = 0
    total: Any = 0
    max_open_positions: Any = 0
    group_by: str = "event"
    scope: str = "account"
    name: str = "notional_caps"
    _per_order: int = attrs.field(init=False, default=0, repr=False)
    _per_asset: int = attrs.field(init=False, default=0, repr=False)
    _per_market: int = attrs.field(init=False, default=0, repr=False)
    _per_group: int = attrs.field(init=False, default=0, repr=False)
    _total: int = attrs.field(init=False, default=0, repr=False)
    _max_open: int = attrs.field(init=False, default=0, repr=False)
    # the smallest loss cap (per_market, per_group, total) configured; the shortcut approves an
    # order when even the loss book's upper bound plus the order stays under it
    _bound_cap: int = attrs.field(init=False, default=0, repr=False)
    _shortcut: bool = attrs.field(init=False, default=True, repr=False)  # (tests compare without it)

    def __attrs_post_init__(self) -> None:
        _name(self.name)
        self._per_order = _units("per_order", self.per_order)
        self._per_asset = _units("per_asset", self.per_asset)
        self._per_market = _units("per_market", self.per_market)
        self._per_group = _units("per_group", self.per_group)
        self._total = _units("total", self.total)
        self._max_open = _count_cap("max_open_positions", self.max_open_positions)
        caps = [c for c in (self._per_market, self._per_group, self._total) if c]
        self._bound_cap = min(caps) if caps else 1 << 62
        _choice("group_by", self.group_by, GROUP_BY)
        _choice("scope", self.scope, SCOPES)

    def group_key(self, info: MarketInfo | None) -> str:
        """The group of a market ("" = none: the market is a group of its own)."""
        if info is None:
            return ""
        if self.group_by == "event":
            return info.neg_risk_market_id or info.event_id
        src = info.series or info.slug
        return src.split("-", 1)[0].strip().lower() if src else ""

    def group_markets(self, market: str, ctx: RiskContext, scope: str | None) -> tuple[str, set[str]]:
        """(group key, the group's markets: the scope's active ones in it, and ``market``)."""
        cat = ctx.catalog
        key = self.group_key(cat.market(market) or cat.for_asset(market))
        if not key:
            return "", {market}
        out = {market}
        for m in ctx.active_markets(scope):
            if m != market and self.group_key(cat.market(m) or cat.for_asset(m)) == key:
                out.add(m)
        return key, out

    def _neg_risk(self, ctx: RiskContext, group: set[str]) -> bool:
        """The group is markets of one neg-risk event (at most one of them resolves YES), so its
        worst case is computed jointly (:meth:`group_loss`) rather than summed."""
        if self.group_by != "event" or len(group) < 2:
            return False
        nr = ""
        for m in group:
            info = ctx.catalog.market(m)
            if info is None or not info.neg_risk or not info.neg_risk_market_id or len(info.asset_ids) != 2:
                return False
            if nr and info.neg_risk_market_id != nr:
                return False
            nr = info.neg_risk_market_id
        return True

    def group_loss(self, ctx: RiskContext, scope: str | None, group: set[str],
                   order: tuple[str, int, str, int] | None = None) -> int:  # fmt: skip
        """The group's worst-case loss (0 when every outcome gains), with ``order`` = (market,
        outcome index, side, its worst-case loss) added. Summed per market, except for the
        markets of one neg-risk event (:meth:`_neg_risk`): there at most one market resolves
        YES, so the loss is the worst of "market w's YES wins, every other NO wins" for each w
        and "no listed market wins" (an unlisted or unknown outcome), each the sum of the
        markets' losses in that case. A market where the scope holds nothing and has no open
        order counts 0, as in the per-market figures."""
        book = ctx.kernel.losses
        key = scope or ""
        if not self._neg_risk(ctx, group):
            total = sum(book.loss(key, m) for m in group)
            if order is not None:
                m, i, side, lo = order
                total += book.with_order(key, m, i, side, lo)[1] - book.loss(key, m)
            return total
        rows = []
        for m in sorted(group):
            info = ctx.catalog.market(m)
            assert info is not None
            mine = order is not None and order[0] == m
            if mine or book.live(key, info.asset_ids):
                v = book.vector(key, m)
                y, n = v[0], v[1]  # the loss if this market's YES wins, if its NO wins
            else:
                y = n = 0
            if mine:
                assert order is not None
                _m, i, side, lo = order
                if (side == "BUY") == (i == 1):  # a BUY of NO or a SELL of YES loses when YES wins
                    y += lo
                else:
                    n += lo
            rows.append((y, n))
        all_no = sum(n for _y, n in rows)
        worst = all_no  # no listed market wins
        for y, n in rows:
            worst = max(worst, all_no - n + y)
        return worst if worst > 0 else 0

    def _fits(self, intent: OrderIntent, ctx: RiskContext, scope: str | None, market: str, full: int,
              w_market: int, f_market: int, book: Any, i: int = 0) -> bool:  # fmt: skip
        """Every configured cap holds with the order at its full size (no resize needed)."""
        if not self._count_fits(intent, ctx, scope, full):
            return False
        key = scope or ""
        side = intent.side
        if self._per_market and f_market > w_market and f_market > self._per_market:
            return False
        total, per_group = self._total, self._per_group
        if total or per_group:
            w_total = book.total(key)
            f_total = w_total - w_market + f_market
            if total and f_total > total and f_total > w_total:
                return False
            if per_group and f_total > per_group:  # a group's loss is at most the total's
                _key, group = self.group_markets(market, ctx, scope)
                w_group = self.group_loss(ctx, scope, group)
                if self.group_loss(ctx, scope, group, (market, i, side, full)) > max(per_group, w_group):
                    return False
        return True

    def _count_fits(self, intent: OrderIntent, ctx: RiskContext, scope: str | None, full: int) -> bool:
        """The caps that are not losses hold: max_open_positions, per_asset, per_order."""
        key = scope or ""
        if intent.side == "BUY":
            max_open = self._max_open
            per_asset = self._per_asset
            if max_open or per_asset:
                a = intent.asset_id
                pf = ctx.portfolio
                pos = pf.by_strategy.get((scope, a)) if scope else pf.positions.get(a)
                buys = ctx.exposure.buys
                if max_open and not ((pos is not None and pos.size) or buys.get((key, a))) and (
                        len(pf.positions) + len(buys) + 1 > max_open):  # a cheap upper bound first
                    # it opens a new position: count the open ones
                    if scope:
                        held = {x for (s_, x), q in pf.by_strategy.items() if s_ == scope and q.size}
                    else:
                        held = {x for x, q in pf.positions.items() if q.size}
                    opened = held | {x for (s_, x), v in buys.items() if s_ == key and v}
                    if len(opened) + 1 > max_open:
                        return False
                if per_asset and (pos.cost if pos is not None else 0) + buys.get((key, a), 0) + full > per_asset:
                    return False
        if self._per_order and intent.price * intent.size > self._per_order * SCALE:
            return False
        return True

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        scope = (ctx.strategy or None) if self.scope == "strategy" else None
        asset = intent.asset_id
        side = intent.side
        price = intent.price
        info = ctx.facts(asset)[1]
        if info is not None:
            fees, assets, market = info.fees, info.asset_ids, info.market
        else:  # an uncatalogued asset is a market of its own (as the loss book keys it)
            fees, assets, market = None, (asset,), asset
        full = intent_loss(side, price, intent.size, fees)
        book = ctx.kernel.losses  # the current worst cases, kept by the kernel (O(1) to read)
        if (self._shortcut and book.bound(scope or "") + full <= self._bound_cap
                and self._count_fits(intent, ctx, scope, full)):  # fmt: skip
            # every market's, group's and the total worst case with the order is at most the
            # loss book's bound plus the order (LossBook.bound): under the smallest loss cap
            return APPROVE
        w_market, f_market = book.with_order(scope or "", market, assets.index(asset), side, full)  # fmt: skip
        if f_market <= w_market:
            return APPROVE  # the order does not make the worst case worse
        i = assets.index(asset)
        if self._fits(intent, ctx, scope, market, full, w_market, f_market, book, i):
            return APPROVE  # the common case, decided without building any resize
        where = _scope_label(scope)

        def resized(n: int) -> OrderIntent:
            return msgspec.structs.replace(intent, size=n)

        def loss_of(n: int) -> int:
            return intent_loss(side, price, n, fees)

        bounds: list[_Bound] = []

        if self._max_open and side == "BUY":
            pf = ctx.portfolio
            s_key = scope or ""
            if scope:
                held = {a for (s, a), p in pf.by_strategy.items() if s == scope and p.size}
            else:
                held = {a for a, p in pf.positions.items() if p.size}
            opened = held | {a for (s, a), v in ctx.exposure.buys.items() if s == s_key and v}
            if asset not in opened and len(opened) + 1 > self._max_open:
                return reject(self.name, f"{where}: a BUY of {_short(asset)} would open position number "
                                         f"{len(opened) + 1} > max_open_positions {self._max_open}")  # fmt: skip

        if self._per_order and price * intent.size > self._per_order * SCALE:
            n = min(intent.size, self._per_order * SCALE // price) // LOT * LOT
            bounds.append(_Bound(n, f"order notional {_fmt(-(-price * intent.size // SCALE))} > per_order cap "
                                    f"{_fmt(self._per_order)}"))  # fmt: skip

        if self._per_asset and side == "BUY":
            pos = ctx.portfolio.by_strategy.get((scope, asset)) if scope else ctx.portfolio.positions.get(asset)
            cost = pos.cost if pos is not None else 0
            open_buys = ctx.exposure.open_buy(asset, scope or "")
            if cost + open_buys + full > self._per_asset:
                n = fit_size(side, price, fees, self._per_asset - cost - open_buys, intent.size)
                bounds.append(_Bound(n, f"{where}: asset {_short(asset)} exposure would be "
                                        f"{_fmt(cost + open_buys + full)} (position cost {_fmt(cost)} + open buys "
                                        f"{_fmt(open_buys)} + order {_fmt(full)}) > per_asset cap "
                                        f"{_fmt(self._per_asset)}"))  # fmt: skip

        def loss_bound(cap: int, w: int, f: int, label: str, measure: Callable[[OrderIntent, int], int]) -> None:
            limit = max(cap, w)
            if f <= limit:
                return
            budget = limit - (f - full)  # f = A + x(size) once the hurt outcomes decide
            n = fit_size(side, price, fees, budget, intent.size)
            why = f"{where}: {label} worst-case loss would be {_fmt(f)} > cap {_fmt(cap)}"
            if w > cap:
                why += f" (already {_fmt(w)})"
            bounds.append(_Bound(n, why, lambda s: measure(resized(s), loss_of(s)) <= limit))

        if self._per_market:
            loss_bound(self._per_market, w_market, f_market, f"market {_short(market)}",
                       lambda it, lo: ctx.market_loss(market, scope, it, lo if side == "BUY" else None))  # fmt: skip

        if self._per_group:
            key, group = self.group_markets(market, ctx, scope)
            w_group = self.group_loss(ctx, scope, group)
            f_group = self.group_loss(ctx, scope, group, (market, i, side, full))
            label = f"group {key!r} ({len(group)} markets)" if key else f"market {_short(market)} (no group)"
            loss_bound(self._per_group, w_group, f_group, label,
                       lambda it, lo: self.group_loss(ctx, scope, group, (market, i, side, lo)))  # fmt: skip

        if self._total:
            w_total = book.total(scope or "")
            f_total = w_total - w_market + f_market  # the order changes only its own market
            loss_bound(self._total, w_total, f_total, f"total ({len(book.markets(scope or '') | {market})} markets)",
                       lambda it, lo: ctx.total_loss(scope, it, lo if side == "BUY" else None))  # fmt: skip

        return _finish(self.name, intent, ctx, bounds)


# --------------------------------------------------------------------------------------------
# position_caps
# --------------------------------------------------------------------------------------------


@attrs.define
class PositionCaps:
    """Caps on shares (0 = no cap):

    * ``max_shares``: per asset, the position + the open BUY orders' remaining shares (from the
      order store) + the order, for a BUY (a SELL only shrinks it);
    * ``max_imbalance``: per binary market, ``|qty YES - qty NO|`` once the order fills (a BUY
      adds to its outcome, a SELL takes from it). Open orders that push the same way as the
      order count as filled. An order that does not grow the imbalance passes; one that would
      exceed both the cap and the current imbalance is resized to fit the larger of the two.
    """

    skip_reducing = True  # a flatten's reduce-only sells pass (RiskChain)

    max_shares: Any = 0
    max_imbalance: Any = 0
    scope: str = "account"
    name: str = "position_caps"
    _max_shares: int = attrs.field(init=False, default=0, repr=False)
    _max_imbalance: int = attrs.field(init=False, default=0, repr=False)
    _bound_cap: int = attrs.field(init=False, default=0, repr=False)  # the smaller configured cap
    _shortcut: bool = attrs.field(init=False, default=True, repr=False)  # (tests compare without it)

    def __attrs_post_init__(self) -> None:
        _name(self.name)
        self._max_shares = _units("max_shares", self.max_shares)
        self._max_imbalance = _units("max_imbalance", self.max_imbalance)
        _choice("scope", self.scope, SCOPES)
        caps = [c for c in (self._max_shares, self._max_imbalance) if c]
        self._bound_cap = min(caps) if caps else 0

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        max_shares, max_imb = self._max_shares, self._max_imbalance
        if not (max_shares or max_imb):
            return APPROVE
        scope = (ctx.strategy or None) if self.scope == "strategy" else None
        key = scope or ""
        asset = intent.asset_id
        size = intent.size
        if (self._shortcut and ctx.orders.open_total.get(key, 0) + ctx.kernel.losses.pos_shares.get(key, 0) + size
                <= self._bound_cap):  # fmt: skip
            # every asset's shares and every market's imbalance, with the order, are at most all
            # the scope's position sizes plus all its open orders plus the order: under both caps
            return APPROVE
        pf = ctx.portfolio
        qty = ctx.orders.open_qty.get  # (scope, asset, side) -> remaining shares of open orders
        bounds: list[_Bound] | None = None
        if max_shares and intent.side == "BUY":
            p = pf.by_strategy.get((scope, asset)) if scope else pf.positions.get(asset)
            held = p.size if p is not None else 0
            pending = qty((key, asset, "BUY"), 0)
            after = held + pending + size
            if after > max_shares:
                n = max(0, max_shares - held - pending) // LOT * LOT
                bounds = [_Bound(n, f"{_scope_label(scope)}: asset {_short(asset)} would hold {_fmt(after)} shares "
                                    f"(position {_fmt(held)} + open buys {_fmt(pending)} + order {_fmt(size)}) > "
                                    f"max_shares {_fmt(max_shares)}")]  # fmt: skip
        if max_imb:
            info = ctx.facts(asset)[1]
            if info is not None and len(info.asset_ids) == 2:
                yes, no = info.asset_ids
                if scope:
                    py, pn = pf.by_strategy.get((scope, yes)), pf.by_strategy.get((scope, no))
                else:
                    py, pn = pf.positions.get(yes), pf.positions.get(no)
                d = (py.size if py is not None else 0) - (pn.size if pn is not None else 0)
                up = (asset == yes) == (intent.side == "BUY")  # BUY YES / SELL NO grow YES - NO
                if up:
                    pending = qty((key, yes, "BUY"), 0) + qty((key, no, "SELL"), 0)
                else:
                    pending = qty((key, no, "BUY"), 0) + qty((key, yes, "SELL"), 0)
                before = (d if up else -d) + pending  # the imbalance the way this order pushes
                after = before + size
                limit = max(max_imb, abs(before))
                if after > limit:
                    n = max(0, limit - before) // LOT * LOT
                    b = _Bound(n, f"{_scope_label(scope)}: market {_short(info.market)} YES-NO imbalance would be "
                                  f"{_fmt(after if up else -after)} shares (positions {_fmt(d)}, open orders "
                                  f"{_fmt(pending)} the same way) > max_imbalance {_fmt(max_imb)}")  # fmt: skip
                    bounds = [b] if bounds is None else [*bounds, b]
        if bounds is None:
            return APPROVE
        return _finish(self.name, intent, ctx, bounds)


# --------------------------------------------------------------------------------------------
# loss_limits
# --------------------------------------------------------------------------------------------


class _Days:
    """The local date (ISO) of a kernel time in one time zone, with the current day's bounds
    cached (one comparison per call on the hot path)."""

    __slots__ = ("tz", "lo", "hi", "day")

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.lo = 1
        self.hi = 0
        self.day = ""

    def __call__(self, ts: int) -> str:
        if self.lo <= ts < self.hi:
            return self.day
        tz = self.tz
        d: date = datetime.fromtimestamp(ts // _NS, tz).date()
        nxt = d + timedelta(days=1)
        lo = int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()) * _NS
        hi = int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()) * _NS
        if lo <= ts < hi:
            self.lo, self.hi, self.day = lo, hi, d.isoformat()
        return d.isoformat()


@attrs.define
class _Track:
    """One scope's PnL history: its day, the net at the day's start, the peak, the last net
    observed, and the breach that tripped (latched until the day rolls or an operator resumes)."""

    day: str
    base: int
    peak: int
    last: int
    tripped: str = ""
    kind: str = ""  # "daily" | "drawdown"

    def to_state(self) -> list[Any]:
        return [self.day, self.base, self.peak, self.last, self.tripped, self.kind]


@attrs.define
class LossLimits:
    """Stop trading when the PnL falls too far (money; 0 = no limit):

    * ``max_daily_loss``: the net PnL (realized + unrealized - fees + rebates, pairs marked at 1,
      the rest at the portfolio's marks: ``portfolio.pnl(scope, portfolio.marks(books)).net``)
      may fall at most this far below its value at the start of the day. Days are calendar days
      in ``timezone`` (an IANA name, default UTC) of the kernel's clock;
    * ``max_drawdown``: the net may fall at most this far below its highest value since the
      start (peak to trough).

    The net is observed at every ``PnLUpdate`` (after each fill and settlement: for the account
    scope the account's net is recomputed then, for ``scope = "strategy"`` the strategy's update
    is used) and at every check. The start of a day is the last net observed before its first
    observation (conservative: a move between that observation and midnight counts for the new
    day). A breach, found at either moment, halts the kernel (``kernel.halt``, once per breach)
    and every later order is rejected, except a ``reduce_only`` SELL of no more than the scope
    holds (so a flatten can run). A daily breach clears when the day rolls over (the kernel stays
    halted until an operator resumes); an operator's resume acknowledges the loss: the tripped
    scope's day base and peak restart from its current net.
    """

    max_daily_loss: Any = 0
    max_drawdown: Any = 0
    timezone: str = "UTC"
    scope: str = "account"
    name: str = "loss_limits"
    _max_daily: int = attrs.field(init=False, default=0, repr=False)
    _max_dd: int = attrs.field(init=False, default=0, repr=False)
    _days: _Days | None = attrs.field(init=False, default=None, repr=False)
    _kernel: Any = attrs.field(init=False, default=None, repr=False)
    _tracks: dict[str, _Track] = attrs.field(init=False, factory=dict, repr=False)

    _net_stamp: Any = attrs.field(init=False, default=None, repr=False)
    _net_cache: int = attrs.field(init=False, default=0, repr=False)
    # (scope, day start, day end): the last check observed the cached net in that day and found
    # no breach, so a check with the same stamp inside that day needs no new observation
    _quiet: Any = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        _name(self.name)
        self._max_daily = _units("max_daily_loss", self.max_daily_loss)
        self._max_dd = _units("max_drawdown", self.max_drawdown)
        _choice("scope", self.scope, SCOPES)
        if not isinstance(self.timezone, str) or not self.timezone:
            raise ValueError(f"timezone: must be an IANA time zone name, got {self.timezone!r}")
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        self._days = _Days(tz)

    # ------------------------------------------------------------------ wiring and state

    def attach(self, kernel: Kernel) -> None:
        self._kernel = kernel
        kernel.bus.subscribe(PnLUpdate, self._on_pnl, priority=PRIORITY_KERNEL)
        kernel.bus.subscribe(TradingStateChanged, self._on_state, priority=PRIORITY_KERNEL)

    def to_state(self) -> dict[str, Any]:
        return {"tracks": {k: self._tracks[k].to_state() for k in sorted(self._tracks)}}

    def restore(self, state: dict[str, Any]) -> None:
        self._tracks = {k: _Track(*v) for k, v in state.get("tracks", {}).items()}
        self._quiet = None
        self._net_stamp = None  # the portfolio was restored too

    def track(self, key: str = "") -> _Track | None:
        """The PnL history of a scope ("" = the account, else a strategy)."""
        return self._tracks.get(key)

    # ------------------------------------------------------------------ observing

    def _net(self, key: str) -> int:
        k = self._kernel
        pf = k.portfolio
        return int(pf.pnl(key, pf.marks(k.books)).net)

    def _on_pnl(self, ev: PnLUpdate) -> None:
        # the net moved (a fill, or a settlement: that one changes neither the fills nor the
        # books of the check's stamp), so the check's cached net is stale
        self._net_stamp = None
        if not (self._max_daily or self._max_dd) or self._kernel is None:
            return
        if self.scope == "account":
            net = ev.net if not ev.strategy else self._net("")
            self._observe("", net, ev.ts, self._kernel.halt)
        elif ev.strategy:
            self._observe(ev.strategy, ev.net, ev.ts, self._kernel.halt)

    def _on_state(self, ev: TradingStateChanged) -> None:
        if ev.state != "active" or ev.previous == "active" or self._kernel is None:
            return
        self._quiet = None
        for key, t in self._tracks.items():
            if t.tripped:  # the operator resumed after a breach: acknowledged
                net = self._net(key)
                t.base = t.peak = t.last = net
                t.tripped = t.kind = ""

    def _observe(self, key: str, net: int, ts: int, halt: Callable[[str], None]) -> str:
        """Record one observation of a scope's net; returns the breach in force ("" = none)."""
        assert self._days is not None
        self._quiet = None
        day = self._days(ts)
        t = self._tracks.get(key)
        if t is None:
            t = self._tracks[key] = _Track(day, net, net, net)
        elif day != t.day:
            t.day, t.base = day, t.last
            if t.kind == "daily":
                t.tripped = t.kind = ""
        t.last = net
        if net > t.peak:
            t.peak = net
        if not t.tripped:
            who = _scope_label(key)
            loss = t.base - net
            dd = t.peak - net
            if self._max_daily and loss > self._max_daily:
                t.tripped, t.kind = (f"{who}: daily loss {_fmt(loss)} > max_daily_loss {_fmt(self._max_daily)} "
                                     f"(net {_fmt(net)}, {_fmt(t.base)} at the start of {day} {self.timezone})"), "daily"  # fmt: skip
            elif self._max_dd and dd > self._max_dd:
                t.tripped, t.kind = (f"{who}: drawdown {_fmt(dd)} > max_drawdown {_fmt(self._max_dd)} "
                                     f"(net {_fmt(net)}, peak {_fmt(t.peak)})"), "drawdown"  # fmt: skip
            if t.tripped:
                halt(f"{self.name}: {t.tripped}")
        return t.tripped

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        if not (self._max_daily or self._max_dd):
            return APPROVE
        if self._kernel is None:
            self._kernel = ctx.kernel
        scope = (ctx.strategy or None) if self.scope == "strategy" else None
        key = scope or ""
        k = ctx.kernel
        now = ctx.now
        stamp = (key, k.book_changes, k.stats.fills)  # marks move with the books, PnL on fills
        if stamp == self._net_stamp:
            q = self._quiet
            if q is not None and q[0] == key and q[1] <= now < q[2]:
                return APPROVE  # same net, same day, nothing tripped since it was observed
        else:
            pf = ctx.portfolio
            self._net_cache = int(pf.pnl(key, pf.marks(ctx.books)).net)
            self._net_stamp = stamp
        tripped = self._observe(key, self._net_cache, now, ctx.halt)
        if not tripped:
            assert self._days is not None
            self._quiet = (key, self._days.lo, self._days.hi)
        if tripped and not _covered_reduce(intent, ctx, scope):
            return reject(self.name, tripped)
        return APPROVE


# --------------------------------------------------------------------------------------------
# sizing
# --------------------------------------------------------------------------------------------


@attrs.define
class Sizing:
    """Order sizing: resizes an order DOWN to a target size (never up); a target below the
    market minimum rejects it. A ``reduce_only`` SELL of no more than the account holds passes.

    * ``mode = "fixed"``: at most ``size`` shares;
    * ``mode = "kelly"``: from the intent's ``probability`` q (required) and ``confidence`` c
      (optional, default 1): a BUY at price p has the Kelly fraction ``f* = (q - p) / (1 - p)``
      and the target is ``floor(kelly_fraction x c x f* x bankroll / p)`` shares; a SELL is the
      complement's BUY (``q' = 1 - q`` at ``p' = 1 - p``), in shares of the asset sold.
      ``bankroll`` is the parameter, or the portfolio's cash when 0. ``f* <= 0`` rejects
      ("no edge"). Exact: probability and confidence are taken at their shortest decimal repr
      (0.6 is 3/5), the rest is rational arithmetic;
    * ``mode = "volatility"``: ``risk_per_order / (vol x vol_multiple)`` shares, ``vol`` being
      an exponentially weighted standard deviation of the asset's mid-price changes (half-life
      ``vol_halflife_s`` of kernel time, updated from its book events when both sides exist).
      Without an estimate yet (no mid change seen) the order passes unchanged, or is rejected
      with ``require_vol = true``.
    """

    mode: str = "fixed"
    size: Any = 0
    kelly_fraction: Any = "0.25"
    bankroll: Any = 0
    risk_per_order: Any = 0
    vol_halflife_s: Any = 300
    vol_multiple: Any = 1
    require_vol: bool = False
    name: str = "sizing"
    _size: int = attrs.field(init=False, default=0, repr=False)
    _kelly: Fraction = attrs.field(init=False, default=Fraction(1, 4), repr=False)
    _bankroll: int = attrs.field(init=False, default=0, repr=False)
    _risk: int = attrs.field(init=False, default=0, repr=False)
    _half_ns: float = attrs.field(init=False, default=0.0, repr=False)
    _vol_multiple: float = attrs.field(init=False, default=1.0, repr=False)
    _books: Any = attrs.field(init=False, default=None, repr=False)
    #: asset -> [twice the last mid, kernel ns of the last mid change, variance, changes seen]
    _vol: dict[str, list[Any]] = attrs.field(init=False, factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        _name(self.name)
        _choice("mode", self.mode, SIZING_MODES)
        self._size = _units("size", self.size)
        self._kelly = _ratio("kelly_fraction", self.kelly_fraction, above=Fraction(0), at_most=Fraction(1))
        self._bankroll = _units("bankroll", self.bankroll)
        self._risk = _units("risk_per_order", self.risk_per_order)
        self._half_ns = float(_ratio("vol_halflife_s", self.vol_halflife_s, above=Fraction(0)) * _NS)
        self._vol_multiple = float(_ratio("vol_multiple", self.vol_multiple, above=Fraction(0)))
        _bool("require_vol", self.require_vol)
        if self.mode == "fixed" and self._size < LOT:
            raise ValueError(f"size: fixed sizing needs a size of at least 0.01 shares, got {self.size!r}")
        if self.mode == "volatility" and self._risk <= 0:
            raise ValueError(f"risk_per_order: volatility sizing needs risk_per_order > 0, got {self.risk_per_order!r}")

    # ------------------------------------------------------------------ volatility estimate

    def attach(self, kernel: Kernel) -> None:
        self._books = kernel.books
        if self.mode == "volatility":
            kernel.bus.subscribe(BookSnapshot, self._on_book, priority=PRIORITY_KERNEL)
            kernel.bus.subscribe(BookDelta, self._on_book, priority=PRIORITY_KERNEL)

    def _on_book(self, ev: BookSnapshot | BookDelta) -> None:
        b = self._books.get(ev.asset_id)
        if b is None:
            return
        bb, ba = b.best_bid, b.best_ask
        if not bb or not ba:
            return
        m2 = bb + ba  # twice the mid: integer
        st = self._vol.get(ev.asset_id)
        if st is None:
            self._vol[ev.asset_id] = [m2, ev.ts, 0.0, 0]
            return
        if m2 == st[0]:
            return
        d = (m2 - st[0]) / 2
        if st[3]:
            decay = 0.5 ** (max(0, ev.ts - st[1]) / self._half_ns)
            var = decay * st[2] + (1.0 - decay) * d * d
        else:
            var = d * d
        st[0], st[1], st[2], st[3] = m2, ev.ts, var, st[3] + 1

    def volatility(self, asset_id: str) -> float | None:
        """The current estimate (std of mid changes, price base units), or None."""
        st = self._vol.get(asset_id)
        if st is None or not st[3] or st[2] <= 0:
            return None
        return math.sqrt(st[2])

    def to_state(self) -> dict[str, Any]:
        return {"vol": {a: list(v) for a, v in sorted(self._vol.items())}}

    def restore(self, state: dict[str, Any]) -> None:
        self._vol = {a: list(v) for a, v in state.get("vol", {}).items()}

    # ------------------------------------------------------------------ check

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        fixed = self.mode == "fixed"
        if fixed and intent.size <= self._size:
            return APPROVE  # the common case, without formatting a reason
        if intent.reduce_only and _covered_reduce(intent, ctx, None):
            return APPROVE
        if fixed:
            target, what = self._size, f"fixed size {_fmt(self._size)} shares"
        elif self.mode == "kelly":
            out = self._kelly_size(intent, ctx)
            if isinstance(out, Decision):
                return out
            target, what = out
        else:
            vol = self.volatility(intent.asset_id)
            if vol is None:
                if self.require_vol:
                    return reject(self.name, f"no volatility estimate for asset {_short(intent.asset_id)} yet")
                return APPROVE
            target = math.floor(self._risk * SCALE / (vol * self._vol_multiple))
            what = (f"volatility: risk {_fmt(self._risk)} / (vol {vol / SCALE:.6g} x {self._vol_multiple:g}) = "
                    f"{_fmt(target // LOT * LOT)} shares")  # fmt: skip
        target = max(0, target) // LOT * LOT
        if intent.size <= target:
            return APPROVE
        minimum = _min_size(ctx, intent.asset_id)
        if target < minimum or target <= 0:
            return reject(self.name, f"{what}: below the market minimum {_fmt(minimum)}")
        return resize(self.name, target, what)

    def _kelly_size(self, intent: OrderIntent, ctx: RiskContext) -> tuple[int, str] | Decision:
        q_in = intent.probability
        if q_in is None:
            return reject(self.name, "kelly sizing needs the intent's probability")
        if not (isinstance(q_in, (int, float)) and math.isfinite(q_in) and 0 <= q_in <= 1):
            return reject(self.name, f"kelly sizing: probability must be in [0, 1], got {q_in!r}")
        c_in = 1.0 if intent.confidence is None else intent.confidence
        if not (isinstance(c_in, (int, float)) and math.isfinite(c_in) and 0 <= c_in <= 1):
            return reject(self.name, f"kelly sizing: confidence must be in [0, 1], got {c_in!r}")
        if not 0 < intent.price < SCALE:
            return reject(self.name, f"kelly sizing: price must be in (0, 1), got {_fmt(intent.price)}")
        q = Fraction(Decimal(repr(float(q_in))))  # as written: 0.6 is 3/5, not the float's binary value
        p = Fraction(intent.price, SCALE)
        if intent.side == "SELL":  # selling at p is buying the complement at 1 - p
            q, p = 1 - q, 1 - p
        edge = (q - p) / (1 - p)
        if edge <= 0:
            return reject(self.name, f"no edge: win probability {float(q):.4g} <= price {float(p):.4g} "
                                     f"({intent.side})")  # fmt: skip
        bankroll = self._bankroll or int(ctx.portfolio.cash)
        if bankroll <= 0:
            return reject(self.name, f"kelly sizing needs a bankroll: cash is {_fmt(bankroll)}")
        conf = Fraction(Decimal(repr(float(c_in))))
        target = math.floor(self._kelly * conf * edge * bankroll / p)
        what = (f"kelly: {float(self._kelly):g} x confidence {c_in:g} x f* {float(edge):.4g} x bankroll "
                f"{_fmt(bankroll)} / price {float(p):.4g} = {_fmt(target // LOT * LOT)} shares")  # fmt: skip
        return target, what


VALIDATORS: dict[str, Callable[..., Any]] = {
    "notional_caps": NotionalCaps,
    "position_caps": PositionCaps,
    "loss_limits": LossLimits,
    "sizing": Sizing,
}
