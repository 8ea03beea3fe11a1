"""polybot.orders: the order state machine (explicit table) and the order store."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.events import (
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
from polybot.execution.orders import STALE, TERMINAL, TRANSITIONS, OrderStore

SHARE = 1_000_000


def intent(cid: str = "pb-1", size: int = 10 * SHARE, price: int = 450_000, **kw: Any) -> OrderIntent:
    base = dict(strategy="s1", asset_id="tokA", side="BUY", price=price, size=size, client_id=cid, market="m1")
    base.update(kw)
    return OrderIntent(**base)


def submitted(o_intent: OrderIntent, ts: int = 1) -> OrderSubmitted:
    return OrderSubmitted(ts=ts, client_id=o_intent.client_id, intent=o_intent)


def fill(cid: str, size: int, price: int = 450_000, fee: int = 0, full: bool = False, ts: int = 3, tid: str = "t") -> FillEvent:
    cls = OrderFilled if full else OrderPartiallyFilled
    return cls(ts=ts, client_id=cid, trade_id=tid, side="BUY", price=price, size=size, liquidity="taker", fee=fee)


def make(store: OrderStore | None = None, cid: str = "pb-1", size: int = 10 * SHARE) -> tuple[OrderStore, Any]:
    store = store or OrderStore()
    it = intent(cid, size)
    return store, store.create(it, ts=1)


def ok(store: OrderStore, ev: OrderEvent) -> Any:
    o, err = store.apply(ev)
    assert err is None, err
    return o


# ------------------------------------------------------------------------------------ table


def test_table_shape() -> None:
    assert set(TRANSITIONS) == {
        "created", "submitted", "accepted", "partially_filled", "filled", "cancel_pending",
        "cancelled", "rejected", "expired", "unknown",
    }  # fmt: skip
    for src, dsts in TRANSITIONS.items():
        assert dsts <= set(TRANSITIONS), src
    assert TRANSITIONS["filled"] == frozenset() and TRANSITIONS["rejected"] == frozenset()
    assert TERMINAL == {"filled", "cancelled", "rejected", "expired"}


def test_legal_path_to_filled() -> None:
    store, o = make()
    assert o.state == "created" and o.is_open and store.open_orders() == [o]
    it = o.intent
    assert ok(store, submitted(it)).state == "submitted"
    assert ok(store, OrderAccepted(ts=2, client_id="pb-1", venue_order_id="v-9")).state == "accepted"
    assert o.venue_order_id == "v-9"
    ok(store, fill("pb-1", 3 * SHARE, fee=10, ts=3))
    assert (o.state, o.filled, o.remaining, o.cost, o.fees) == ("partially_filled", 3 * SHARE, 7 * SHARE, 1_350_000, 10)
    ok(store, fill("pb-1", 2 * SHARE, price=440_000, fee=5, ts=4))
    assert (o.state, o.filled, o.cost, o.fees) == ("partially_filled", 5 * SHARE, 1_350_000 + 880_000, 15)
    ok(store, fill("pb-1", 5 * SHARE, full=True, ts=5))
    assert (o.state, o.filled, o.remaining, o.updated_ts) == ("filled", 10 * SHARE, 0, 5)
    assert not o.is_open
    assert store.open_orders() == []
    assert store.get("pb-1") is o and "pb-1" in store and store.all() == [o]
    assert o.venue_order_id == "v-9"  # an event without a venue id does not erase it


def test_partial_fill_event_that_completes_the_order_is_filled() -> None:
    store, o = make()
    ok(store, submitted(o.intent))
    ok(store, fill("pb-1", 10 * SHARE))
    assert o.state == "filled" and not o.is_open


def test_filled_event_for_part_of_the_order_is_partial() -> None:
    store, o = make()
    ok(store, submitted(o.intent))
    ok(store, OrderAccepted(client_id="pb-1"))
    ok(store, fill("pb-1", 4 * SHARE, full=True))
    assert o.state == "partially_filled" and o.is_open and o.filled == 4 * SHARE


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (["submitted", "accepted", "filled"], "cancelled"),
        (["submitted", "accepted", "filled"], "partially_filled"),
        (["submitted", "accepted", "filled"], "filled"),  # a duplicate fill is not counted twice
        (["submitted", "rejected"], "accepted"),
        (["submitted", "rejected"], "filled"),
        (["submitted", "rejected"], "unknown"),
        ([], "accepted"),  # created -> accepted: never submitted
        ([], "filled"),
        (["submitted", "accepted"], "submitted"),
    ],
)
def test_illegal_transitions_are_errors_and_change_nothing(path: list[str], bad: str) -> None:
    store, o = make()
    for s in path:
        ok(store, event_for(s, o))
    before = (o.state, o.filled, o.cost, o.fees, o.updated_ts, o.is_open, len(store.open_orders()))
    got, err = store.apply(event_for(bad, o, ts=99))
    assert got is o
    assert err is not None and "illegal transition" in err and o.client_id in err
    assert bad in err
    assert (o.state, o.filled, o.cost, o.fees, o.updated_ts, o.is_open, len(store.open_orders())) == before


@pytest.mark.parametrize(
    ("path", "late"),
    [
        (["submitted", "accepted", "filled"], "accepted"),  # the REST answer after the user channel's fill
        (["submitted", "partially_filled"], "accepted"),
        (["submitted", "accepted", "cancelled"], "accepted"),
        (["submitted", "accepted", "cancelled"], "unknown"),  # a timeout reported after the cancel landed
        (["submitted", "filled"], "unknown"),
        (["submitted", "accepted"], "unknown"),
    ],
)
def test_an_acknowledgement_overtaken_by_a_later_state_is_moot(path: list[str], late: str) -> None:
    store, o = make()
    for s in path:
        ok(store, event_for(s, o))
    before = (o.state, o.filled, o.cost, o.fees, o.updated_ts, o.is_open, len(store.open_orders()))
    got, err = store.apply(event_for(late, o, ts=99))
    assert got is o and err is None
    assert (o.state, o.filled, o.cost, o.fees, o.updated_ts, o.is_open, len(store.open_orders())) == before


def test_cancel_of_a_closed_order_is_moot() -> None:
    store, o = make()
    for k in ("submitted", "accepted", "filled"):
        ok(store, event_for(k, o))
    got, err = store.apply(CancelSubmitted(ts=9, client_id=o.client_id))
    assert err is None and got is o and o.state == "filled" and o.updated_ts != 9


def test_late_fill_after_cancel_is_accepted_and_counted() -> None:
    store, o = make()
    ok(store, submitted(o.intent))
    ok(store, OrderAccepted(client_id="pb-1"))
    ok(store, CancelSubmitted(client_id="pb-1"))
    assert o.state == "cancel_pending" and o.is_open
    ok(store, OrderCancelled(client_id="pb-1", ts=5))
    assert o.state == "cancelled" and not o.is_open and store.open_orders() == []
    # the venue matched before it saw the cancel
    ok(store, fill("pb-1", 3 * SHARE, fee=7, ts=6))
    assert (o.state, o.filled, o.fees) == ("cancelled", 3 * SHARE, 7)
    assert store.open_orders() == []
    ok(store, fill("pb-1", 2 * SHARE, full=True, ts=7))
    assert (o.state, o.filled) == ("cancelled", 5 * SHARE)
    ok(store, fill("pb-1", 5 * SHARE, full=True, ts=8))
    assert (o.state, o.filled) == ("filled", 10 * SHARE)
    assert store.open_orders() == []


def test_late_fill_after_expiry() -> None:
    store, o = make()
    ok(store, submitted(o.intent))
    ok(store, OrderExpired(client_id="pb-1"))
    ok(store, fill("pb-1", SHARE))
    assert (o.state, o.filled, o.is_open) == ("expired", SHARE, False)


def test_fill_during_cancel_pending() -> None:
    store, o = make()
    ok(store, submitted(o.intent))
    ok(store, CancelSubmitted(client_id="pb-1"))
    ok(store, fill("pb-1", SHARE))
    assert o.state == "partially_filled" and o.is_open
    ok(store, fill("pb-1", 9 * SHARE, full=True))
    assert o.state == "filled"


def test_unknown_state_recovers() -> None:
    store, o = make()
    ok(store, submitted(o.intent))
    ok(store, OrderUnknown(client_id="pb-1", reason="timeout"))
    assert o.state == "unknown" and o.is_open
    ok(store, OrderUnknown(client_id="pb-1", reason="timeout again"))  # repeat is idempotent
    ok(store, OrderAccepted(client_id="pb-1"))
    assert o.state == "accepted"


def test_repeated_non_fill_event_is_idempotent() -> None:
    store, o = make()
    ok(store, submitted(o.intent))
    ok(store, OrderAccepted(client_id="pb-1", ts=2))
    ok(store, OrderAccepted(client_id="pb-1", ts=3))
    assert o.state == "accepted" and o.updated_ts == 3


def test_unknown_order_id_is_an_error() -> None:
    store, _ = make()
    o, err = store.apply(OrderAccepted(client_id="nope"))
    assert o is None and err is not None and "nope" in err
    o, err = store.apply(fill("nope", SHARE))
    assert o is None and err is not None
    assert store.get("pb-1").filled == 0  # type: ignore[union-attr]


def test_open_orders_filters() -> None:
    store = OrderStore()
    a = store.create(intent("a", strategy="s1", asset_id="x"), 1)
    b = store.create(intent("b", strategy="s2", asset_id="x"), 1)
    c = store.create(intent("c", strategy="s1", asset_id="y"), 1)
    assert store.open_orders() == [a, b, c]
    assert store.open_orders(strategy="s1") == [a, c]
    assert store.open_orders(asset_id="x") == [a, b]
    assert store.open_orders("s1", "y") == [c]
    ok(store, submitted(a.intent))
    ok(store, OrderRejected(client_id="a", reason="no"))
    assert store.open_orders(strategy="s1") == [c]
    assert (a.strategy, a.asset_id) == ("s1", "x")


# ------------------------------------------------------------------------------------ state


def test_to_state_restore_round_trip() -> None:
    store = OrderStore()
    orders = {}
    for i, path in enumerate(
        [
            ["submitted"],
            ["submitted", "accepted"],
            ["submitted", "accepted", "partially_filled"],
            ["submitted", "cancel_pending"],
            ["submitted", "unknown"],
            ["submitted", "accepted", "filled"],  # terminal: not in the snapshot
            ["submitted", "rejected"],  # terminal
            [],
        ]
    ):
        cid = f"pb-{i}"
        o = store.create(intent(cid, note=f"n{i}", probability=0.25 if i % 2 else None), ts=i)
        for s in path:
            ok(store, event_for(s, o, ts=10 + i))
        orders[cid] = o
    state = store.to_state()
    assert [s["client_id"] for s in state] == ["pb-0", "pb-1", "pb-2", "pb-3", "pb-4", "pb-7"]
    restored = OrderStore()
    restored.restore(msgspec.json.decode(msgspec.json.encode(state)))
    assert restored.to_state() == state
    for s in state:
        a, b = orders[s["client_id"]], restored.get(s["client_id"])
        assert b is not None and b == a  # attrs equality: every field, the intent struct included
    assert [o.client_id for o in restored.open_orders()] == [s["client_id"] for s in state]
    assert "pb-5" not in restored
    # restored orders keep working
    ok(restored, fill("pb-2", 10 * SHARE - orders["pb-2"].filled, full=True))
    assert restored.get("pb-2").state == "filled"  # type: ignore[union-attr]
    assert restored.open_orders(strategy="s1")[0].client_id == "pb-0"


# ------------------------------------------------------------------------------------ model test

EVENT_KINDS = ["submitted", "accepted", "rejected", "partially_filled", "filled", "cancel_pending",
               "cancelled", "expired", "unknown"]  # fmt: skip


def event_for(kind: str, o: Any, ts: int = 2, size: int | None = None) -> OrderEvent:
    cid = o.client_id
    if kind == "submitted":
        return OrderSubmitted(ts=ts, client_id=cid, intent=o.intent)
    if kind == "partially_filled":
        return fill(cid, size if size is not None else max(1, o.remaining // 2), ts=ts)
    if kind == "filled":
        return fill(cid, size if size is not None else max(1, o.remaining), full=True, ts=ts)
    cls = {
        "accepted": OrderAccepted, "rejected": OrderRejected, "cancel_pending": CancelSubmitted,
        "cancelled": OrderCancelled, "expired": OrderExpired, "unknown": OrderUnknown,
    }[kind]  # fmt: skip
    return cls(ts=ts, client_id=cid)


# fills weighted up so that sequences often reach filled (and then get more fills)
KIND_MIX = st.sampled_from(EVENT_KINDS + ["partially_filled", "filled"] * 3)


@settings(max_examples=400)
@given(
    st.booleans(),
    st.lists(st.tuples(KIND_MIX, st.integers(1, 6 * SHARE)), max_size=25),
)
def test_random_event_sequences_follow_the_table(pre_submit: bool, seq: list[tuple[str, int]]) -> None:
    store, o = make()
    if pre_submit:
        seq = [("submitted", 0), *seq]
    total_filled = 0
    for i, (kind, size) in enumerate(seq):
        ev = event_for(kind, o, ts=i, size=size)
        old = o.state
        before = (o.filled, o.cost, o.fees, o.updated_ts)
        got, err = store.apply(ev)
        assert got is o
        is_fill = isinstance(ev, FillEvent)
        legal = kind in TRANSITIONS[old] or (kind == old and not is_fill)
        if (kind == "cancel_pending" and old in TERMINAL) or old in STALE.get(kind, ()):
            # a cancel that crossed the end, or an acknowledgement overtaken by a later state: moot
            assert err is None and o.state == old and (o.filled, o.cost, o.fees, o.updated_ts) == before
            continue
        if not legal:
            assert err is not None
            assert o.state == old and (o.filled, o.cost, o.fees, o.updated_ts) == before
            continue
        assert err is None
        if is_fill:
            total_filled += size
            if total_filled >= o.intent.size:
                assert o.state == "filled"
            elif old in ("cancelled", "expired"):
                assert o.state == old
            else:
                assert o.state == "partially_filled"
        else:
            assert o.state == kind
        assert o.filled == total_filled
        assert o.updated_ts == i
        # the open index agrees with the state
        assert (o in store.open_orders()) == (o.state not in TERMINAL)
    # once filled or rejected, nothing else was ever applied
    assert o.filled == total_filled


# a path from created to each state, through the table
PATHS: dict[str, list[str]] = {
    "created": [], "submitted": ["submitted"], "accepted": ["submitted", "accepted"],
    "partially_filled": ["submitted", "accepted", "partially_filled"],
    "filled": ["submitted", "accepted", "filled"], "cancel_pending": ["submitted", "accepted", "cancel_pending"],
    "cancelled": ["submitted", "accepted", "cancelled"], "rejected": ["submitted", "rejected"],
    "expired": ["submitted", "accepted", "expired"], "unknown": ["submitted", "unknown"],
}  # fmt: skip
ALL_STATES = list(PATHS)


@pytest.mark.parametrize("target", ALL_STATES[1:])
@pytest.mark.parametrize("start", ALL_STATES)
def test_every_transition_is_allowed_or_refused_as_the_table_says(start: str, target: str) -> None:
    """All 10 x 9 (state, event) pairs: applied when the table allows it, an error otherwise."""
    assert set(PATHS) == set(TRANSITIONS)
    store, o = make()
    for s in PATHS[start]:
        ok(store, event_for(s, o))
    assert o.state == start
    before = (o.state, o.filled, o.updated_ts)
    got, err = store.apply(event_for(target, o, ts=99))
    repeat_ok = target == start and target not in ("partially_filled", "filled")  # idempotent repeat
    if (target == "cancel_pending" and start in TERMINAL) or start in STALE.get(target, ()):
        # a cancel that crossed the order's end (its fill was still queued), or an acknowledgement
        # (accepted, unknown) overtaken by a later state: moot, nothing changes
        assert err is None and (o.state, o.filled, o.updated_ts) == before
    elif target in TRANSITIONS[start] or repeat_ok:
        assert err is None, err
        if target in ("partially_filled", "filled") and start in ("cancelled", "expired"):
            assert o.state in (start, "filled") and o.filled > before[1]  # a late fill: accounted
        else:
            assert o.state == target
    else:
        assert err is not None and f"{start} -> {target}" in err
        assert (o.state, o.filled, o.updated_ts) == before
