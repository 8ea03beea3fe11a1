"""Own orders: the state machine and the store the kernel keeps them in.

States and the allowed transitions are an explicit table; a transition that is not in it is not
applied silently: :meth:`OrderStore.apply` returns an error string the kernel reports. A fill
after a cancel (the venue matched before it saw the cancel) is allowed and accounted.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ..events import (
    CancelSubmitted,
    FillEvent,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderPartiallyFilled,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
)

OrderState = Literal[
    "created", "submitted", "accepted", "partially_filled", "filled", "cancel_pending",
    "cancelled", "rejected", "expired", "unknown",
]  # fmt: skip

TERMINAL: frozenset[str] = frozenset({"filled", "cancelled", "rejected", "expired"})

#: state -> states it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"submitted", "rejected"}),
    "submitted": frozenset(
        {"accepted", "rejected", "partially_filled", "filled", "cancel_pending", "cancelled",
         "expired", "unknown"}  # fmt: skip
    ),
    "accepted": frozenset(
        {"partially_filled", "filled", "cancel_pending", "cancelled", "expired", "unknown"}
    ),
    "partially_filled": frozenset(
        {"partially_filled", "filled", "cancel_pending", "cancelled", "expired", "unknown"}
    ),
    # "rejected": the submit was refused while a cancel was on its way (a killed FOK, say)
    "cancel_pending": frozenset(
        {"cancelled", "partially_filled", "filled", "expired", "accepted", "unknown", "rejected"}
    ),
    "unknown": frozenset(
        {"accepted", "rejected", "partially_filled", "filled", "cancel_pending", "cancelled",
         "expired"}  # fmt: skip
    ),
    # late fills after a cancel or an expiry are real money: accept them.
    "cancelled": frozenset({"partially_filled", "filled"}),
    "expired": frozenset({"partially_filled", "filled"}),
    "filled": frozenset(),
    "rejected": frozenset(),
}

#: an acknowledgement that arrives after the order moved past it (a live venue's REST answer or a
#: resolution racing the user channel's fill or cancel): stale, nothing changes, no error
STALE: dict[str, frozenset[str]] = {
    "accepted": frozenset({"partially_filled", "filled", "cancelled", "expired"}),
    "unknown": frozenset({"accepted", "partially_filled", "filled", "cancel_pending", "cancelled", "expired"}),
}

EVENT_STATE: dict[type, str] = {
    OrderSubmitted: "submitted",
    OrderAccepted: "accepted",
    OrderRejected: "rejected",
    OrderPartiallyFilled: "partially_filled",
    OrderFilled: "filled",
    OrderCancelled: "cancelled",
    OrderExpired: "expired",
    OrderUnknown: "unknown",
    CancelSubmitted: "cancel_pending",
}


@attrs.define
class Order:
    client_id: str
    intent: OrderIntent
    state: str = "created"
    filled: int = 0
    cost: int = 0  # sum(price x size) of fills, base units
    fees: int = 0
    venue_order_id: str = ""
    created_ts: int = 0
    updated_ts: int = 0
    counted: int = attrs.field(default=0, repr=False, eq=False)  # remaining shares in the store's totals

    @property
    def strategy(self) -> str:
        return self.intent.strategy

    @property
    def asset_id(self) -> str:
        return self.intent.asset_id

    @property
    def remaining(self) -> int:
        return max(0, self.intent.size - self.filled)

    @property
    def is_open(self) -> bool:
        return self.state not in TERMINAL

    def to_state(self) -> dict:
        from ..events import ENCODER
        import msgspec

        return {
            "client_id": self.client_id,
            "intent": msgspec.json.decode(ENCODER.encode(self.intent)),
            "state": self.state, "filled": self.filled, "cost": self.cost, "fees": self.fees,
            "venue_order_id": self.venue_order_id, "created_ts": self.created_ts,
            "updated_ts": self.updated_ts,
        }  # fmt: skip


class OrderStore:
    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}
        self._open_by_asset: dict[str, dict[str, Order]] = {}
        # (scope, asset, side) -> remaining shares of the open orders; scope "" = every strategy
        self.open_qty: dict[tuple[str, str, str], int] = {}
        self.open_total: dict[str, int] = {}  # scope -> remaining shares of all its open orders

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._orders

    def get(self, client_id: str) -> Order | None:
        return self._orders.get(client_id)

    def open_orders(self, strategy: str | None = None, asset_id: str | None = None) -> list[Order]:
        if asset_id is not None:  # indexed: the risk checks ask per asset on every intent
            by = self._open_by_asset.get(asset_id)
            if not by:
                return []
            return [o for o in by.values() if strategy is None or o.strategy == strategy]
        return [o for o in self._open.values() if strategy is None or o.strategy == strategy]

    def has_open(self, asset_id: str) -> bool:
        """Whether any order on ``asset_id`` is open."""
        return asset_id in self._open_by_asset

    @property
    def open_assets(self) -> Any:
        """The assets with an open order (a read-only view: ``asset in store.open_assets``)."""
        return self._open_by_asset.keys()

    def open_shares(self, strategy: str | None, asset_id: str, side: str) -> int:
        """Remaining shares of the open ``side`` orders on ``asset_id`` (of ``strategy``, or of
        every strategy when None): what ``open_orders`` would sum, kept as a running total."""
        return self.open_qty.get((strategy or "", asset_id, side), 0)

    def _set_open(self, o: Order, is_open: bool) -> None:
        new = o.remaining if is_open else 0
        diff = new - o.counted
        if diff:
            o.counted = new
            it = o.intent
            qty = self.open_qty
            tot = self.open_total
            for key in ((("", it.asset_id, it.side), (it.strategy, it.asset_id, it.side)) if it.strategy
                        else (("", it.asset_id, it.side),)):  # fmt: skip
                v = qty.get(key, 0) + diff
                if v:
                    qty[key] = v
                else:
                    del qty[key]
                tot[key[0]] = tot.get(key[0], 0) + diff
        if is_open:
            self._open[o.client_id] = o
            self._open_by_asset.setdefault(o.asset_id, {})[o.client_id] = o
        elif self._open.pop(o.client_id, None) is not None:
            by = self._open_by_asset.get(o.asset_id)
            if by is not None:
                by.pop(o.client_id, None)
                if not by:
                    del self._open_by_asset[o.asset_id]

    def all(self) -> list[Order]:
        return list(self._orders.values())

    def create(self, intent: OrderIntent, ts: int) -> Order:
        o = Order(client_id=intent.client_id, intent=intent, created_ts=ts, updated_ts=ts)
        self._orders[o.client_id] = o
        self._set_open(o, True)
        return o

    def apply(self, ev: OrderEvent) -> tuple[Order | None, str | None]:
        """Apply a lifecycle event; returns (order, error). Unknown order ids are an error."""
        o = self._orders.get(ev.client_id)
        if o is None:
            return None, f"unknown order {ev.client_id!r}"
        new = EVENT_STATE[type(ev)]
        old = o.state
        stale = STALE.get(new)
        if stale is not None and old in stale:
            return o, None
        if new == "cancel_pending" and old in TERMINAL:
            # the cancel crossed the order's end (a fill queued behind the event that prompted
            # the cancel): there is nothing left to cancel, and nothing changes
            return o, None
        # a repeated non-fill event (a second "accepted") is idempotent; a fill always moves money,
        # so it must be allowed from the current state (no fills on a filled or rejected order).
        if new != old or isinstance(ev, FillEvent):
            if new not in TRANSITIONS[old]:
                return o, f"illegal transition {old} -> {new} for {o.client_id}"
        if isinstance(ev, FillEvent):
            o.filled += ev.size
            o.cost += ev.price * ev.size // 1_000_000
            o.fees += ev.fee
            if o.filled >= o.intent.size:
                new = "filled"
            elif new == "filled":
                new = "partially_filled" if old not in ("cancelled", "expired") else old
            elif old in ("cancelled", "expired"):
                new = old  # a late partial fill: stays cancelled
        if ev.venue_order_id:
            o.venue_order_id = ev.venue_order_id
        o.state = new
        o.updated_ts = ev.ts
        self._set_open(o, new not in TERMINAL)
        return o, None

    def to_state(self) -> list[dict]:
        return [o.to_state() for o in self._orders.values() if o.is_open]

    def restore(self, states: list[dict]) -> None:
        import msgspec

        self._orders.clear()
        self._open.clear()
        self._open_by_asset.clear()
        self.open_qty.clear()
        self.open_total.clear()
        for st in states:
            intent = msgspec.convert(st["intent"], OrderIntent)
            o = Order(
                client_id=st["client_id"], intent=intent, state=st["state"],
                filled=st["filled"], cost=st["cost"], fees=st["fees"],
                venue_order_id=st["venue_order_id"], created_ts=st["created_ts"],
                updated_ts=st["updated_ts"],
            )  # fmt: skip
            self._orders[o.client_id] = o
            if o.is_open:
                self._set_open(o, True)
