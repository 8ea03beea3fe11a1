"""The risk chain: ordered validators between ``submit()`` and the executor.

Each validator is a small class with a ``name`` and ``check(intent, ctx) -> Decision`` (approve,
resize to a smaller size, or reject with a reason a person can read). The chain:

* runs synchronously inside ``submit()`` and fails closed: a validator that raises rejects;
* passes a multi-leg plan whole or not at all; if any leg is resized, every leg is resized to the
  same share count (rounded down to the lot) and re-checked, or the plan is rejected;
* on approval, the kernel reserves the order's worst-case exposure at once (see
  :class:`Exposure`), so the next strategy handling the same event already sees it;
* a ``reduce_only`` intent that really shrinks its strategy's position (a flatten's sells) skips
  the validators marked ``skip_reducing`` (price band, self-trade, rate limits, caps, sizing),
  so an emergency exit is never blocked by a throttle; the venue's rules and the book's
  existence still apply.

Validators are named in config (``[risk] chain = [...]``); third-party ones by ``module:Class``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs
import msgspec

from ..events import OrderIntent
from ..execution.rules import FEE_STEP, max_buy_cost, taker_fee
from ..units import SCALE

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel

Action = Literal["approve", "resize", "reject"]

#: Shares are traded in hundredths (the signed order rounds size down to 2 decimals).
LOT = 10_000


@attrs.frozen
class Decision:
    action: Action
    validator: str = ""
    reason: str = ""
    # the new size for "resize" (per leg for a plan); for a plan that is not resizable, a
    # "reject" carries the size the chain would have allowed
    size: int = 0
    client_ids: tuple[str, ...] = ()  # set by submit(): the orders this decision concerns

    @property
    def approved(self) -> bool:
        return self.action != "reject"


APPROVE = Decision("approve")


def reject(validator: str, reason: str) -> Decision:
    return Decision("reject", validator, reason)


def resize(validator: str, size: int, reason: str) -> Decision:
    return Decision("resize", validator, reason, size)


class Validator(Protocol):
    name: str

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision: ...


class RiskContext:
    """What validators may read, for one ``submit()``: ``kernel`` gives books, catalog,
    portfolio, orders, exposure (also attributes here: the chain reads them for every validator
    of every intent) and ``now`` is the kernel time of the check."""

    __slots__ = ("kernel", "strategy", "books", "catalog", "portfolio", "orders", "exposure", "now", "_fa", "_f")

    def __init__(self, kernel: Kernel, strategy: str = "") -> None:
        self.kernel = kernel
        self.strategy = strategy
        self.books = kernel.books
        self.catalog = kernel.catalog
        self.portfolio = kernel.portfolio
        self.orders = kernel.orders
        self.exposure = kernel.exposure
        self.now: int = kernel.clock.now()  # kernel time of the check (one input's time)
        self._fa: str | None = None
        self._f: tuple[Any, Any, str] = (None, None, "")

    def facts(self, asset_id: str) -> tuple[Any, Any, str]:
        """(book, catalog entry, market) of an asset, looked up once per intent for the whole
        chain: the book or the entry may be None; the market is the catalog's, else the book's,
        else the asset itself (an unknown asset is its own market)."""
        if asset_id is self._fa or asset_id == self._fa:
            return self._f
        book = self.books.get(asset_id)
        info = self.catalog.for_asset(asset_id)
        if info is not None:
            market = info.market
        elif book is not None and book.market:
            market = book.market
        else:
            market = asset_id
        self._fa = asset_id
        f = self._f = (book, info, market)
        return f

    def __repr__(self) -> str:
        return f"RiskContext(strategy={self.strategy!r})"

    @property
    def trading_state(self) -> str:
        return self.kernel.trading_state

    def info(self, asset_id: str):  # noqa: ANN201
        """The asset's market (``MarketInfo``) from the catalog, or None."""
        return self.catalog.for_asset(asset_id)

    def book(self, asset_id: str):  # noqa: ANN201
        """The asset's ``OrderBook``, or None."""
        return self.books.get(asset_id)

    # ---------------------------------------------------------------- worst-case exposure

    def market_assets(self, market_or_asset: str) -> tuple[tuple[str, ...], bool]:
        """The market's outcome tokens and whether they are complete (:meth:`Catalog.outcomes`)."""
        return self.kernel.catalog.outcomes(market_or_asset)

    def outcome_losses(self, market_or_asset: str, strategy: str | None = None,
                       extra: OrderIntent | None = None, extra_loss: int | None = None) -> list[int]:  # fmt: skip
        """The loss (base units, positive = money lost) in each way the market can resolve,
        counting the positions' cost basis and payout, what the market already realized (PnL net
        of fees and rebates), every open order filled when that hurts (a BUY of an outcome that
        loses, a SELL of the one that wins), and ``extra`` (an intent being checked) likewise.
        Matched YES+NO pairs net out: one of them always pays 1."""
        return market_outcome_losses(self.kernel, market_or_asset, strategy or "", extra, extra_loss)

    def intent_loss(self, it: OrderIntent) -> int:
        """What ``it`` adds to its market's worst case, exactly as the kernel reserves it (a BUY
        with the taker fee at its limit)."""
        info = self.kernel.catalog.for_asset(it.asset_id)
        return intent_loss(it.side, it.price, it.size, info.fees if info is not None else None)

    def market_loss(self, market_or_asset: str, strategy: str | None = None,
                    extra: OrderIntent | None = None, extra_loss: int | None = None) -> int:  # fmt: skip
        """Worst-case loss across the market's outcomes (0 when every outcome is a gain)."""
        return max(0, max(self.outcome_losses(market_or_asset, strategy, extra, extra_loss)))

    def market_of(self, asset_id: str) -> str:
        return self.kernel.catalog.market_of(asset_id)

    def active_markets(self, strategy: str | None = None) -> set[str]:
        """Markets (or lone assets) where the scope holds a position or has open orders and
        whose worst case is a loss (the others add nothing to any sum of losses)."""
        return self.kernel.losses.markets(strategy or "")

    def total_loss(self, strategy: str | None = None, extra: OrderIntent | None = None,
                   extra_loss: int | None = None, markets: set[str] | None = None) -> int:  # fmt: skip
        """Sum of the worst-case losses of every active market of the scope (or of ``markets``),
        with ``extra`` added to its own market. The per-market losses come from the kernel's
        :class:`LossBook` (recomputed only where something changed), so this costs O(1) per
        call plus the changed markets, not O(active markets)."""
        scope = strategy or ""
        book = self.kernel.losses
        em = self.market_of(extra.asset_id) if extra is not None else None
        if markets is None:
            total = book.total(scope)
            if em is not None:
                total += self.market_loss(em, scope, extra, extra_loss) - book.loss(scope, em)
            return total
        total = sum(book.loss(scope, m) for m in markets)
        if em is not None and em in markets:
            total += self.market_loss(em, scope, extra, extra_loss) - book.loss(scope, em)
        return total

    def halt(self, reason: str) -> None:
        """Halt trading (a loss limit or a breaker tripped): an engine decision, journaled as a
        ``trading_state`` event, that survives a restart like an operator's halt."""
        self.kernel.halt(reason)


def market_outcome_losses(kernel: Kernel, market_or_asset: str, scope: str = "",
                          extra: OrderIntent | None = None, extra_loss: int | None = None) -> list[int]:  # fmt: skip
    """:meth:`RiskContext.outcome_losses`, as a function (the caps call it on every intent)."""
    cat = kernel.catalog
    assets, complete = cat.outcomes(market_or_asset)
    pf = kernel.portfolio
    if scope:
        by = pf.by_strategy
        keys = [(scope, a) for a in assets]
        positions = [by.get(k_) for k_ in keys]
    else:
        pget = pf.positions.get
        keys = [("", a) for a in assets]
        positions = [pget(a) for a in assets]
    bget = kernel.exposure.buys.get
    sget = kernel.exposure.sells.get
    cost = 0  # cost basis of the shares held, less what the market already realized
    held = []
    buys = []
    sells = []
    ea = extra.asset_id if extra is not None else None
    for a, k_, p in zip(assets, keys, positions):
        if p is not None:
            cost += p.cost - p.realized + p.fees - p.rebates
            held.append(p.size)
        else:
            held.append(0)
        b = bget(k_, 0)
        s_ = sget(k_, 0)
        if a == ea:
            assert extra is not None
            if extra_loss is None:
                info = cat.for_asset(a)
                extra_loss = intent_loss(extra.side, extra.price, extra.size, info.fees if info is not None else None)
            if extra.side == "BUY":
                b += extra_loss
            else:
                s_ += extra_loss
        buys.append(b)
        sells.append(s_)
    all_buys = sum(buys)
    out = [cost - h + all_buys - b + s_ for h, b, s_ in zip(held, buys, sells)]
    if not complete:
        out.append(cost + all_buys)  # none of the listed outcomes pays
    return out


def _recount(parts: dict[tuple[str, str], int], totals: dict[str, int], key: tuple[str, str], new: int) -> None:
    """Set ``key``'s part of its scope's total (``key[0]``) to ``new``."""
    old = parts.get(key, 0)
    if new != old:
        if new:
            parts[key] = new
        else:
            del parts[key]
        totals[key[0]] = totals.get(key[0], 0) + new - old


def with_order(vec: list[int], i: int, side: str, loss: int) -> int:
    """The worst-case loss (0 when every outcome gains) of an outcome-loss vector once an order
    of outcome ``i`` with worst-case ``loss`` is added: a BUY loses it in every other outcome
    (and in "none pays" of an incomplete set), a SELL in outcome ``i``."""
    if side == "BUY":
        worst = vec[i]
        for j, v in enumerate(vec):
            if j != i and v + loss > worst:
                worst = v + loss
    else:
        worst = vec[i] + loss
        for v in vec:
            if v > worst:
                worst = v
    return worst if worst > 0 else 0


class LossBook:
    """The worst-case loss of every market with a position or an open order, per scope (the
    account "" and each strategy), and their sums, kept current for the caps.

    Each (scope, market) keeps its outcome-loss vector (:func:`market_outcome_losses`). An open
    order's reservation or release moves the vector by its loss, in place (:meth:`exposure_changed`:
    a BUY of outcome i adds to every other outcome, a SELL to outcome i); a position change
    (:meth:`touch`) marks it stale, and it is recomputed when next read. A market counts (is
    active) when the scope holds a position or has an open order there and its worst case is a
    loss; otherwise it counts 0."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.vecs: dict[str, dict[str, list[int]]] = {}  # scope -> market -> outcome losses
        self.by_scope: dict[str, dict[str, int]] = {}  # scope -> active market -> worst-case loss
        self.sums: dict[str, int] = {}
        self.dirty: dict[str, set[str]] = {}  # scope -> markets whose vector is stale
        self._loc: dict[str, tuple[str, tuple[str, ...], int]] = {}  # asset -> (market, outcomes, index)
        # scope -> the sum over its positions of what each can add to a market's worst case at
        # most (cost basis net of realized PnL, fees and rebates, and a short size), see bound()
        self.pos_bound: dict[str, int] = {}
        self._pos_c: dict[tuple[str, str], int] = {}  # (scope, asset) -> its part of pos_bound
        self.pos_shares: dict[str, int] = {}  # scope -> sum of |size| of its positions (position caps' shortcut)
        self._pos_n: dict[tuple[str, str], int] = {}  # (scope, asset) -> its part of pos_shares

    def touch(self, strategy: str, asset_id: str) -> None:
        """A position of ``strategy`` in ``asset_id`` changed: recompute its market when read."""
        m = self.kernel.catalog.market_of(asset_id)
        self.dirty.setdefault("", set()).add(m)
        self._pos_update("", asset_id)
        if strategy:
            self.dirty.setdefault(strategy, set()).add(m)
            self._pos_update(strategy, asset_id)

    def _pos_update(self, scope: str, asset_id: str) -> None:
        """Recount one position's parts of the scope's running totals (``pos_bound``, ``pos_shares``)."""
        pf = self.kernel.portfolio
        p = pf.by_strategy.get((scope, asset_id)) if scope else pf.positions.get(asset_id)
        key = (scope, asset_id)
        if p is None:
            _recount(self._pos_c, self.pos_bound, key, 0)
            _recount(self._pos_n, self.pos_shares, key, 0)
            return
        _recount(self._pos_c, self.pos_bound, key, max(0, p.cost - p.realized + p.fees - p.rebates) + max(0, -p.size))
        _recount(self._pos_n, self.pos_shares, key, abs(p.size))

    def bound(self, scope: str) -> int:
        """An upper bound of the scope's worst-case loss in every market and in total, cheap to
        read: its positions' part (above) plus every open order's loss. A market's worst case is
        ``cost - held_k + buys - buys_k + sells_k`` in its worst outcome k, at most the market's
        positions' costs (and short sizes) plus all its open orders' losses; summed over the
        markets, at most this. With an order of loss ``x`` added, ``bound + x`` bounds every
        market's, group's and the total worst case with it (the caps' shortcut)."""
        return self.pos_bound.get(scope, 0) + self.kernel.exposure.open_loss.get(scope, 0)

    def _locate(self, asset_id: str) -> tuple[str, tuple[str, ...], int]:
        """(market, its outcome tokens, the asset's index among them), cached until a reset."""
        info = self.kernel.catalog.for_asset(asset_id)
        if info is not None:
            loc = (info.market, info.asset_ids, info.asset_ids.index(asset_id))
        else:
            loc = (asset_id, (asset_id,), 0)  # an unknown asset is a market of its own
        self._loc[asset_id] = loc
        return loc

    def exposure_changed(self, strategy: str, asset_id: str, side: str, delta: int) -> None:
        """An open order's worst-case loss on ``asset_id`` moved by ``delta`` (the hook of
        :class:`Exposure`, called after its totals changed)."""
        loc = self._loc.get(asset_id)
        m, assets, i = loc if loc is not None else self._locate(asset_id)
        for scope in ("", strategy) if strategy else ("",):
            d = self.dirty.get(scope)
            if d and m in d:
                continue
            per = self.vecs.get(scope)
            vec = per.get(m) if per is not None else None
            if vec is None:
                if d is None:
                    d = self.dirty[scope] = set()
                d.add(m)
                continue
            if side != "BUY":
                vec[i] += delta
            elif len(vec) == 2:
                vec[1 - i] += delta
            else:
                for j in range(len(vec)):
                    if j != i:
                        vec[j] += delta
            # an added order makes the market live; a released one may leave it idle
            self._set(scope, m, vec, assets, delta > 0)

    def live(self, scope: str, assets: tuple[str, ...]) -> bool:
        """The scope holds a position or has an open order in the market."""
        pf, ex = self.kernel.portfolio, self.kernel.exposure
        for a in assets:
            p = pf.by_strategy.get((scope, a)) if scope else pf.positions.get(a)
            if (p is not None and p.size) or (scope, a) in ex.buys or (scope, a) in ex.sells:
                return True
        return False

    def _set(self, scope: str, m: str, vec: list[int], assets: tuple[str, ...], live: bool = False) -> None:
        """Record the market's worst-case loss: max(vec) when the scope is live there and it is
        positive; else the market is not active (counts 0)."""
        new = max(vec)
        if new <= 0 or not (live or self.live(scope, assets)):
            new = 0
        per = self.by_scope.get(scope)
        if per is None:
            per = self.by_scope[scope] = {}
        old = per.get(m, 0)
        if new:
            per[m] = new
        elif old:
            del per[m]
        if new != old:
            self.sums[scope] = self.sums.get(scope, 0) + new - old

    def with_order(self, scope: str, market: str, i: int, side: str, loss: int) -> tuple[int, int]:
        """(the market's worst-case loss now, and once an order of outcome ``i`` with worst-case
        ``loss`` is added): :meth:`current` and :func:`with_order` in one call (the caps ask on
        every intent)."""
        vec = self.vector(scope, market)
        bs = self.by_scope.get(scope)
        now = bs.get(market, 0) if bs is not None else 0
        if len(vec) == 2:
            a, b = (vec[0], vec[1]) if i == 0 else (vec[1], vec[0])  # a: outcome i, b: the other
            if side == "BUY":
                b += loss
            else:
                a += loss
            worst = a if a > b else b
            return now, (worst if worst > 0 else 0)
        return now, with_order(vec, i, side, loss)

    def current(self, scope: str, market: str) -> tuple[int, list[int]]:
        """(the market's worst-case loss, its outcome-loss vector) for the scope."""
        vec = self.vector(scope, market)
        per = self.by_scope.get(scope)
        return (per.get(market, 0) if per is not None else 0), vec

    def reset(self) -> None:
        """Recompute everything (the catalog changed: assets may have joined a market)."""
        k = self.kernel
        self._loc.clear()
        self.vecs.clear()
        self.by_scope.clear()
        self.sums.clear()
        self.dirty.clear()
        self.pos_bound.clear()
        self._pos_c.clear()
        self.pos_shares.clear()
        self._pos_n.clear()
        for (strategy, asset), p in k.portfolio.by_strategy.items():
            if p.size or p.cost:
                self.touch(strategy, asset)
        for cid, (strategy, asset, _amt) in k.exposure.by_order.items():
            self.touch(strategy, asset)
        for asset in k.portfolio.positions:  # every position, closed ones too (their realized loss)
            self._pos_update("", asset)
        for strategy, asset in k.portfolio.by_strategy:
            if strategy:
                self._pos_update(strategy, asset)

    def _refresh(self, scope: str) -> None:
        """Recompute the scope's stale markets."""
        todo = self.dirty.pop(scope, None)
        if not todo:
            return
        k = self.kernel
        vecs = self.vecs.setdefault(scope, {})
        for m in sorted(todo):
            vec = vecs[m] = market_outcome_losses(k, m, scope)
            self._set(scope, m, vec, k.catalog.outcomes(m)[0])

    def vector(self, scope: str, market: str) -> list[int]:
        """The market's outcome losses for the scope (current; do not modify)."""
        d = self.dirty.get(scope)
        if d and market in d:
            self._refresh(scope)
        per = self.vecs.get(scope)
        vec = per.get(market) if per is not None else None
        if vec is None:
            vec = market_outcome_losses(self.kernel, market, scope)
            self.vecs.setdefault(scope, {})[market] = vec
            self._set(scope, market, vec, self.kernel.catalog.outcomes(market)[0])
        return vec

    def loss(self, scope: str, market: str) -> int:
        d = self.dirty.get(scope)
        if d and market in d:
            self._refresh(scope)
        per = self.by_scope.get(scope)
        return per.get(market, 0) if per is not None else 0

    def total(self, scope: str) -> int:
        if self.dirty.get(scope):
            self._refresh(scope)
        return self.sums.get(scope, 0)

    def markets(self, scope: str) -> set[str]:
        if self.dirty.get(scope):
            self._refresh(scope)
        return set(self.by_scope.get(scope, ()))


def worst_case(intent: OrderIntent, held: int, size: int | None = None) -> int:
    """Cash at risk of an order (of ``size`` shares, default its own) in base units: a BUY can
    lose what it pays; a SELL of shares held loses nothing more than the position already
    carries; an uncovered SELL can lose (1 - price) per share."""
    size = intent.size if size is None else size
    if intent.side == "BUY":
        return -((-intent.price * size) // SCALE)
    uncovered = max(0, size - max(0, held))
    return -((-(SCALE - intent.price) * uncovered) // SCALE)  # rounded up, like the BUY side


def order_loss(side: str, price: int, size: int, buy_cost: int | None = None) -> int:
    """An open order's contribution to its market's worst-case loss (see
    :meth:`RiskContext.outcome_losses`): a BUY can cost what it pays (``buy_cost`` when the caller
    includes the taker fee); a SELL of outcome k at p turns a share that would pay 1 if k wins
    into p, a loss of (1 - p) per share in that outcome. Rounded up."""
    if side == "BUY":
        return buy_cost if buy_cost is not None else -((-price * size) // SCALE)
    return -((-(SCALE - price) * size) // SCALE)


_FEE_DEN_1 = SCALE * SCALE * SCALE  # the fee fraction's denominator at exponent 1 (rules._fee_fraction)


def intent_loss(side: str, price: int, size: int, fees: Any = None) -> int:
    """What an order of ``size`` shares at limit ``price`` adds to its market's worst-case loss,
    fees included (what the kernel reserves, and what the caps check): a BUY at most its
    notional plus the taker fee at its limit (``max_buy_cost``: filling cheaper costs less); a
    SELL (1 - p) per share in the outcome it sells plus the taker fee on the proceeds (filling
    higher loses less). ``fees`` is the market's ``FeeSchedule`` (None = fee-free)."""
    if side == "BUY":
        if fees is None or not fees.rate_ppm:
            return -((-price * size) // SCALE)
        e = fees.exponent
        if e == 1 and fees.rate_ppm > 0 and size >= 0 and 0 <= price <= SCALE and fees.model == "curve":
            # max_buy_cost inlined for the common schedule (exponent 1): notional rounded up +
            # the fee at the limit, rounded up to the fee step
            num = size * fees.rate_ppm * (price * (SCALE - price))
            return -((-price * size) // SCALE) - ((num // -_FEE_DEN_1) // FEE_STEP) * FEE_STEP
        return max_buy_cost(size, price, fees)
    return order_loss("SELL", price, size) + taker_fee(size, price, fees, "SELL")


class Exposure:
    """Reserved worst-case exposure of open orders and approved in-flight intents.

    ``amount`` per order is its cash at risk (what the risk event reports as reserved); each
    order also adds ``loss`` (:func:`order_loss`) to its asset's open BUY or SELL total, for the
    account ("") and for its strategy: those totals are what the market worst-case loss reads."""

    def __init__(self) -> None:
        self.by_order: dict[str, tuple[str, str, int]] = {}  # client_id -> (strategy, asset, amount)
        self.total = 0
        self.legs: dict[str, tuple[str, int]] = {}  # client_id -> (side, loss)
        # (strategy, asset, side, loss delta), called after the totals changed
        self.on_change: Callable[[str, str, str, int], None] | None = None
        self.buys: dict[tuple[str, str], int] = {}  # (scope, asset) -> open BUY loss
        self.sells: dict[tuple[str, str], int] = {}  # (scope, asset) -> open SELL loss
        # scope -> the sum of its open orders' losses, each counted from 0 (LossBook.bound): a
        # negative one (a SELL above 1 in a fee-free market: a certain gain in the outcome it
        # sells) lowers no other outcome's or market's worst case, so it must not lower the bound
        self.open_loss: dict[str, int] = {}

    def reserve(self, client_id: str, strategy: str, asset_id: str, amount: int, side: str = "BUY",
                loss: int | None = None) -> None:  # fmt: skip
        if client_id in self.by_order:
            self.release(client_id)
        self.by_order[client_id] = (strategy, asset_id, amount)
        self.total += amount
        lo = amount if loss is None else loss
        self.legs[client_id] = (side, lo)
        agg = self.sells if side == "SELL" else self.buys
        ol = self.open_loss
        for scope in ("", strategy) if strategy else ("",):  # the account, and the strategy
            k = (scope, asset_id)
            v = agg.get(k, 0) + lo
            if v:
                agg[k] = v
            else:
                agg.pop(k, None)
            if lo > 0:
                ol[scope] = ol.get(scope, 0) + lo
        if self.on_change is not None:
            self.on_change(strategy, asset_id, side, lo)

    def release(self, client_id: str, amount: int | None = None) -> None:
        """Release all (or ``amount`` of) an order's reservation."""
        cur = self.by_order.get(client_id)
        if cur is None:
            return
        strategy, asset, have = cur
        amt = have if amount is None else min(amount, have)
        self.total -= amt
        side, lo = self.legs.pop(client_id, ("BUY", 0))
        # a partial release scales the loss contribution with the amount
        lo_amt = lo if amt == have or not have else lo * amt // have
        agg = self.sells if side == "SELL" else self.buys
        ol = self.open_loss
        for scope in ("", strategy) if strategy else ("",):  # the account, and the strategy
            k = (scope, asset)
            v = agg.get(k, 0) - lo_amt
            if v:
                agg[k] = v
            else:
                agg.pop(k, None)
            if lo_amt > 0:
                ol[scope] -= lo_amt
        if amt == have:
            del self.by_order[client_id]
        else:
            self.by_order[client_id] = (strategy, asset, have - amt)
            self.legs[client_id] = (side, lo - lo_amt)
        if self.on_change is not None and lo_amt:
            self.on_change(strategy, asset, side, -lo_amt)

    def open_buy(self, asset_id: str, strategy: str = "") -> int:
        return self.buys.get((strategy, asset_id), 0)

    def to_state(self) -> list[list[Any]]:
        return [[k, *v, *self.legs.get(k, ("BUY", v[2]))] for k, v in sorted(self.by_order.items())]

    def restore(self, items: list[list[Any]]) -> None:
        """Load a :meth:`to_state`: a bulk replacement, so ``on_change`` is not called (the old
        reservations go without a word, so per-order deltas would mean nothing): its owner
        rebuilds from the totals afterwards (the kernel resets its loss book)."""
        hook = self.on_change
        self.__init__()  # type: ignore[misc]
        for item in items:
            cid, s, a, amt = item[:4]
            side, lo = (item[4], item[5]) if len(item) >= 6 else ("BUY", amt)
            self.reserve(cid, s, a, amt, side, lo)
        self.on_change = hook


# --------------------------------------------------------------------------------------------
# Built-in validators (the risk issue adds the rest)
# --------------------------------------------------------------------------------------------


def reduces(intent: OrderIntent, ctx: RiskContext) -> bool:
    """The intent only shrinks its strategy's position: a SELL of at most the shares the
    strategy holds of that asset and has not already offered in open SELLs (one whose cancel is
    pending is not counted: a flatten right after its cancel-all still reduces)."""
    if intent.side != "SELL" or intent.size <= 0:
        return False
    strategy = ctx.strategy or intent.strategy
    free = ctx.portfolio.size(intent.asset_id, strategy)
    if intent.size > free:
        return False
    for o in ctx.orders.open_orders(strategy, asset_id=intent.asset_id):
        if o.intent.side == "SELL" and o.state != "cancel_pending" and o.client_id != intent.client_id:
            free -= o.remaining
    return intent.size <= free


@attrs.define
class PassThrough:
    """Approves everything. For tests and for chains that are deliberately empty."""

    name: str = "pass"

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        return APPROVE


@attrs.define
class TradingStateValidator:
    """Halted: nothing passes. Reducing: only orders that shrink a position pass."""

    name: str = "trading_state"

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        state = ctx.trading_state
        if state == "active":
            return APPROVE
        if state == "halted":
            return reject(self.name, "trading is halted")
        if reduces(intent, ctx):
            return APPROVE
        return reject(self.name, "trading is reducing: only orders that shrink a position pass")


#: check_intent: no verdict handed over from the straight line (a validator may return None)
_NO_VERDICT: Any = object()


def _straight_line(checks: Sequence[Callable[[OrderIntent, RiskContext], Decision]]) -> Callable[..., tuple[int, Any]]:
    """A function that calls ``checks`` in order, without a loop: ``(len(checks), APPROVE)``
    when every one returns ``APPROVE`` (the same object), ``(i, decision)`` at the first that
    does not, ``(~i, exception)`` when check ``i`` raises. Generated source, like attrs and
    namedtuple do, because the loop's own bookkeeping is a fifth of a cheap chain's cost."""
    ns: dict[str, Any] = {"APPROVE": APPROVE}
    lines = ["def run(intent, ctx):", "    i = 0", "    try:", "        pass"]
    for j, c in enumerate(checks):
        ns[f"c{j}"] = c
        lines += [f"        i = {j}", f"        d = c{j}(intent, ctx)", "        if d is not APPROVE:", f"            return {j}, d"]
    lines += ["    except Exception as exc:", "        return ~i, exc", f"    return {len(checks)}, APPROVE"]
    exec("\n".join(lines), ns)  # noqa: S102 - our own generated source, no input in it
    return ns["run"]


BUILTIN_VALIDATORS: dict[str, Callable[..., Validator]] = {
    "pass": PassThrough,
    "trading_state": TradingStateValidator,
}


class RiskChain:
    """The ordered validators. ``overrides`` maps a strategy instance to its own list (built from
    the config's per-strategy parameters); other strategies use ``validators``.

    A validator may also have ``attach(kernel)`` (called once: stateful validators subscribe to
    the bus there, at the kernel's priority, so they see fills and rejections before strategies
    act) and ``to_state()`` / ``restore(state)`` (their state is part of the kernel's snapshot)."""

    def __init__(self, validators: Sequence[Validator], overrides: dict[str, Sequence[Validator]] | None = None) -> None:
        self.validators = list(validators)
        self.overrides = {k: list(v) for k, v in (overrides or {}).items()}
        self._compiled: dict[int, tuple[Any, list[Validator], list[tuple[Validator, Any, bool]], Callable[..., tuple[int, Any]]]] = {}

    def all_validators(self) -> list[tuple[str, Validator]]:
        """(scope, validator) for every instance: scope "" is the global chain."""
        out: list[tuple[str, Validator]] = [("", v) for v in self.validators]
        for s in sorted(self.overrides):
            out += [(s, v) for v in self.overrides[s] if not any(v is g for g in self.validators)]
        return out

    def attach(self, kernel: Kernel) -> None:
        for _scope, v in self.all_validators():
            att = getattr(v, "attach", None)
            if att is not None:
                att(kernel)

    def to_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for scope, v in self.all_validators():
            f = getattr(v, "to_state", None)
            if f is not None:
                out[f"{scope}/{getattr(v, 'name', type(v).__name__)}"] = f()
        return out

    def restore(self, st: dict[str, Any]) -> None:
        for scope, v in self.all_validators():
            key = f"{scope}/{getattr(v, 'name', type(v).__name__)}"
            f = getattr(v, "restore", None)
            if f is not None and key in st:
                f(st[key])

    def chain_for(self, strategy: str) -> list[Validator]:
        return self.overrides.get(strategy, self.validators)

    def _steps(self, strategy: str) -> list[tuple[Validator, Any, bool]]:
        """(validator, its bound check, skips reduce-only) for a strategy, built once."""
        return self._entry(strategy)[2]

    def _entry(self, strategy: str) -> tuple[Any, list[Validator], list[tuple[Validator, Any, bool]], Callable[..., tuple[int, Any]]]:
        """(the chain list, a copy of it, its steps, its straight-line run), rebuilt when the list
        was replaced or changed (grown, shrunk, a validator replaced in place by one that is not
        ``==`` to it: the copy is compared element by element, identity first, in C). The entry
        holds the list itself, so no other list can take its id while it is cached."""
        chain = self.overrides.get(strategy, self.validators) if self.overrides else self.validators
        key = id(chain)
        entry = self._compiled.get(key)
        if entry is None or entry[0] is not chain or entry[1] != chain:
            live = {id(self.validators), *(id(v) for v in self.overrides.values())}
            for k in [k for k in self._compiled if k not in live]:  # lists replaced since
                del self._compiled[k]
            steps = [(v, v.check, bool(getattr(v, "skip_reducing", False))) for v in chain]
            entry = self._compiled[key] = (chain, list(chain), steps, _straight_line([c for _v, c, _s in steps]))
        return entry

    def check_intent(self, intent: OrderIntent, ctx: RiskContext) -> tuple[Decision, OrderIntent]:
        """Run every validator; returns the final decision and the (possibly resized) intent."""
        _chain, _copy, steps, run = self._entry(ctx.strategy)
        exempt = intent.reduce_only and reduces(intent, ctx)
        start = 0
        first: Any = _NO_VERDICT
        if not exempt:
            # the common case, every validator approving, in one straight-line call; the first
            # validator that does not approve (or raises) is handled by the loop below
            start, first = run(intent, ctx)
            if start == len(steps):
                return APPROVE, intent
            if start < 0:
                v = steps[~start][0]
                exc = first
                return reject(getattr(v, "name", type(v).__name__), f"validator raised {type(exc).__name__}: {exc}"), intent
        resized: Decision | None = None
        for idx in range(start, len(steps)):
            v, check, skip = steps[idx]
            if exempt and skip:
                continue  # a reduce-only order that shrinks a position (flatten) is not throttled
            if first is not _NO_VERDICT:
                d, first = first, _NO_VERDICT  # the straight line's verdict (any object, None too)
            else:
                try:
                    d = check(intent, ctx)
                except Exception as exc:  # noqa: BLE001 - fail closed
                    return reject(getattr(v, "name", type(v).__name__), f"validator raised {type(exc).__name__}: {exc}"), intent
            if d is APPROVE:
                continue
            if d.__class__ is not Decision:
                if not isinstance(d, Decision):
                    return reject(getattr(v, "name", type(v).__name__), f"validator returned {type(d).__name__}, not a Decision"), intent
            action = d.action
            if action == "approve":
                continue
            if action == "reject":
                return d, intent
            if action == "resize":
                size = (min(d.size, intent.size) // LOT) * LOT
                if size <= 0:
                    return reject(d.validator, f"resized to nothing: {d.reason}"), intent
                if size < intent.size:
                    intent = msgspec.structs.replace(intent, size=size)
                    resized = Decision("resize", d.validator, d.reason, size)
        return (resized or APPROVE), intent

    def check_plan(
        self, legs: Sequence[OrderIntent], ctx: RiskContext
    ) -> tuple[Decision, list[OrderIntent]]:
        """All legs pass, or the plan is rejected; a resize applies one share count to all legs
        (the smallest any validator allows), and the resized plan is checked again."""
        current = list(legs)
        last_resize: Decision | None = None
        kernel = getattr(ctx, "kernel", None)
        for _round in range(3):
            new_size: int | None = None
            smallest = min((leg.size for leg in current), default=0)  # a resize never grows a leg
            held: list[str] = []
            try:
                for leg in current:
                    d, out = self.check_intent(leg, ctx)
                    if d.action == "reject":
                        return reject(d.validator, f"leg {leg.asset_id[:16]}: {d.reason}"), list(legs)
                    if d.action == "resize" and (new_size is None or out.size < new_size):
                        new_size = out.size
                        last_resize = d
                    if kernel is not None and leg.client_id:
                        # the next legs are checked with this one counted (sum caps see the plan).
                        # A batch is not atomic: each leg may fill alone, so legs do not net out
                        # as a hedge in the worst case (a YES+NO pair is two open BUYs)
                        kernel._reserve(out, ctx.strategy or leg.strategy, out.size)
                        held.append(leg.client_id)
            finally:
                if kernel is not None:
                    for cid in held:
                        kernel.exposure.release(cid)
            if new_size is not None:
                new_size = min(new_size, smallest)
            if new_size is None:
                if last_resize is None:
                    return APPROVE, current
                return Decision("resize", last_resize.validator, last_resize.reason, current[0].size), current
            current = [msgspec.structs.replace(leg, size=new_size) for leg in current]
        return reject("chain", "plan resize did not settle on one size"), list(legs)
