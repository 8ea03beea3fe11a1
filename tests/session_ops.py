"""Shared steps of the random-session property tests (tests/test_review_*.py): submitting an
intent or a plan, and the venue answering an order (a fill, a cancel and its ack, an expiry, a
rejection, an acceptance) as inputs of a recorded executor."""

from __future__ import annotations

from typing import Any

from polybot.events import (
    ENCODER,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderPartiallyFilled,
    OrderPlan,
    OrderRejected,
)
from polybot.kernel import Kernel

LOT = 10_000


def feed(k: Kernel, ts: int, *evs: Event, source: str = "events") -> None:
    k.process(ts, source, ENCODER.encode(list(evs)))


def submit(k: Kernel, strategy: str, legs: list[tuple[str, str, int]], lots: int, plan: bool) -> tuple[str, ...]:
    """Submit one intent (``plan=False``, one leg) or a plan of ``legs`` (asset, side, price),
    ``lots`` lots each; returns the client ids of what was approved."""
    intents = tuple(OrderIntent(strategy="", asset_id=a, side=s, price=px, size=lots * LOT) for a, s, px in legs)  # type: ignore[arg-type]
    d = k.submit(strategy, OrderPlan(strategy="", plan_id="", legs=intents) if plan else intents[0])
    return d.client_ids if d.approved else ()


def venue(k: Kernel, t: int, client_id: str, what: str, lots: int, price: int | None = None,
          **fill: Any) -> None:  # fmt: skip
    """The venue's answer about one order: ``what`` is fill / cancel (ours, through the kernel)
    / ack_cancel / expire / reject / accept. A fill of ``lots`` lots at ``price`` (default the
    limit) with ``fill`` (liquidity, fee, rebate) completes the order when it covers the rest."""
    o = k.orders.get(client_id)
    if o is None:
        return
    ref = {"client_id": o.client_id, "asset_id": o.asset_id}
    if what == "cancel":
        k.cancel(None, o.client_id)
        return
    ev: Event
    if what == "fill":
        cls = OrderFilled if lots * LOT >= o.intent.size - o.filled else OrderPartiallyFilled
        ev = cls(**ref, trade_id=f"t{t}", side=o.intent.side, price=o.intent.price if price is None else price,
                 size=lots * LOT, **fill)  # fmt: skip
    else:
        ev = {"ack_cancel": OrderCancelled, "expire": OrderExpired, "reject": OrderRejected,
              "accept": OrderAccepted}[what](**ref)  # fmt: skip
    feed(k, t, ev, source="exec.rec")
