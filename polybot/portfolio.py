"""Positions, cost basis and PnL from fills, exact in base units.

Average-cost accounting per asset (and per strategy): a buy adds shares and cost; a sell
realises ``proceeds - avg_cost x shares``; fees (charged in collateral on CLOB V2) are kept apart
and subtracted in :attr:`Position.net_realized`. Mark-to-market uses the book's best bid (what a
position could be sold for), never a mid.
"""

from __future__ import annotations

import attrs

from .events import FillEvent, MarketResolved
from .units import SCALE


@attrs.define
class Position:
    asset_id: str
    market: str = ""
    size: int = 0
    cost: int = 0  # cost basis of the open size, base units
    realized: int = 0  # realized PnL before fees
    fees: int = 0
    bought: int = 0
    sold: int = 0

    @property
    def avg_price(self) -> int:
        return self.cost * SCALE // self.size if self.size else 0

    @property
    def net_realized(self) -> int:
        return self.realized - self.fees

    def unrealized(self, mark: int) -> int:
        return mark * self.size // SCALE - self.cost

    def apply_fill(self, side: str, price: int, size: int, fee: int) -> None:
        notional = price * size // SCALE
        self.fees += fee
        if side == "BUY":
            self.size += size
            self.cost += notional
            self.bought += size
        else:
            self.sold += size
            if self.size > 0:
                closed = min(size, self.size)
                basis = self.cost * closed // self.size
                self.realized += price * closed // SCALE - basis
                self.cost -= basis
                self.size -= closed
                size -= closed
            if size:  # selling more than held (should not happen on Polymarket): short basis
                self.size -= size
                self.cost -= price * size // SCALE

    def settle(self, payout_per_share: int) -> None:
        """Resolution: the position is redeemed at ``payout_per_share`` (SCALE or 0)."""
        self.realized += payout_per_share * self.size // SCALE - self.cost
        self.size = 0
        self.cost = 0

    def to_state(self) -> dict:
        return attrs.asdict(self)


class Portfolio:
    """Positions by asset (all strategies) and by (strategy, asset)."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self.by_strategy: dict[tuple[str, str], Position] = {}
        self.cash_delta = 0  # collateral spent(-)/received(+) by fills, fees included

    def get(self, asset_id: str) -> Position | None:
        return self.positions.get(asset_id)

    def size(self, asset_id: str, strategy: str | None = None) -> int:
        p = self.positions.get(asset_id) if strategy is None else self.by_strategy.get((strategy, asset_id))
        return p.size if p else 0

    def apply_fill(self, strategy: str, f: FillEvent) -> Position:
        p = self.positions.get(f.asset_id)
        if p is None:
            p = self.positions[f.asset_id] = Position(f.asset_id, f.market)
        p.apply_fill(f.side, f.price, f.size, f.fee)
        key = (strategy, f.asset_id)
        sp = self.by_strategy.get(key)
        if sp is None:
            sp = self.by_strategy[key] = Position(f.asset_id, f.market)
        sp.apply_fill(f.side, f.price, f.size, f.fee)
        notional = f.price * f.size // SCALE
        self.cash_delta += (-notional if f.side == "BUY" else notional) - f.fee
        return p

    def resolve(self, ev: MarketResolved) -> list[Position]:
        changed = []
        for aid in ev.asset_ids:
            payout = SCALE if aid == ev.winning_asset_id else 0
            p = self.positions.get(aid)
            if p and p.size:
                self.cash_delta += payout * p.size // SCALE
                p.settle(payout)
                changed.append(p)
            for (s, a), sp in self.by_strategy.items():
                if a == aid and sp.size:
                    sp.settle(payout)
        return changed

    def realized_pnl(self, strategy: str | None = None) -> int:
        ps = self.positions.values() if strategy is None else (
            p for (s, _a), p in self.by_strategy.items() if s == strategy)  # fmt: skip
        return sum(p.net_realized for p in ps)

    def fees_paid(self) -> int:
        return sum(p.fees for p in self.positions.values())

    def to_state(self) -> dict:
        return {
            "positions": [self.positions[k].to_state() for k in sorted(self.positions)],
            "by_strategy": [
                [s, a, self.by_strategy[(s, a)].to_state()] for s, a in sorted(self.by_strategy)
            ],
            "cash_delta": self.cash_delta,
        }

    def restore(self, st: dict) -> None:
        self.positions = {p["asset_id"]: Position(**p) for p in st["positions"]}
        self.by_strategy = {(s, a): Position(**p) for s, a, p in st["by_strategy"]}
        self.cash_delta = st["cash_delta"]
