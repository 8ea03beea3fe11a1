"""polybot.bus: synchronous dispatch, FIFO re-entrancy, key routing, error isolation."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.bus import Bus, handler_name
from polybot.events import (
    BookDelta,
    BookSnapshot,
    Event,
    FeedStale,
    Halt,
    HandlerError,
    MarketDataEvent,
    Resume,
    TradePrint,
)


def delta(asset: str = "A", ts: int = 0, price: int = 500_000) -> BookDelta:
    return BookDelta(ts=ts, asset_id=asset, side="BID", price=price, size=1_000_000)


def trade(asset: str = "A", ts: int = 0) -> TradePrint:
    return TradePrint(ts=ts, asset_id=asset, price=500_000, size=1_000_000)


class Recorder:
    """Handlers that log (name, event) into one shared list."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def handler(self, name: str, then: Any = None):  # noqa: ANN201
        def h(ev: Event) -> None:
            self.log.append((name, ev))
            if then is not None:
                then(ev)

        h.__qualname__ = f"rec.{name}"
        return h

    def names(self) -> list[str]:
        return [n for n, _ in self.log]


# ------------------------------------------------------------------------------------ basics


def test_delivery_in_subscription_order() -> None:
    bus, rec = Bus(), Recorder()
    for n in "abcde":
        bus.subscribe(BookDelta, rec.handler(n))
    ev = delta()
    bus.publish(ev)
    assert rec.names() == list("abcde")
    assert all(e is ev for _, e in rec.log)
    assert bus.published == 1


def test_only_matching_type_is_delivered() -> None:
    bus, rec = Bus(), Recorder()
    bus.subscribe(BookDelta, rec.handler("delta"))
    bus.subscribe(TradePrint, rec.handler("trade"))
    bus.subscribe(Halt, rec.handler("halt"))
    bus.publish(trade())
    bus.publish(Halt())
    bus.publish(Resume())  # nobody listens: fine
    assert rec.names() == ["trade", "halt"]
    assert bus.published == 3


def test_same_handler_subscribed_twice_runs_twice() -> None:
    bus, rec = Bus(), Recorder()
    h = rec.handler("x")
    bus.subscribe(BookDelta, h)
    bus.subscribe(BookDelta, h)
    bus.publish(delta())
    assert rec.names() == ["x", "x"]


def test_subscribe_refuses_non_event_classes() -> None:
    bus = Bus()
    with pytest.raises(TypeError):
        bus.subscribe(int, lambda e: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bus.subscribe(delta(), lambda e: None)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [Halt, Event, HandlerError])
def test_subscribe_with_key_on_type_without_asset_id(cls: type[Event]) -> None:
    bus = Bus()
    with pytest.raises(TypeError, match="asset_id"):
        bus.subscribe(cls, lambda e: None, key="A")
    # nothing was registered
    bus.publish(Halt())
    assert bus.handler_errors == 0


# ------------------------------------------------------------------------------------ base classes


def test_base_class_subscription_gets_subclasses() -> None:
    bus, rec = Bus(), Recorder()
    bus.subscribe(MarketDataEvent, rec.handler("md"))
    bus.subscribe(Event, rec.handler("all"))
    bus.subscribe(BookDelta, rec.handler("delta"))
    d, t, h = delta(), trade(), Halt()
    for ev in (d, t, h):
        bus.publish(ev)
    assert [(n, e) for n, e in rec.log] == [
        ("md", d), ("all", d), ("delta", d),
        ("md", t), ("all", t),
        ("all", h),
    ]  # fmt: skip


def test_keyed_base_class_subscription() -> None:
    bus, rec = Bus(), Recorder()
    bus.subscribe(MarketDataEvent, rec.handler("md-A"), key="A")
    bus.publish(delta("A"))
    bus.publish(trade("A"))
    bus.publish(delta("B"))
    bus.publish(Halt())
    assert [(n, type(e).__name__, e.asset_id) for n, e in rec.log] == [
        ("md-A", "BookDelta", "A"),
        ("md-A", "TradePrint", "A"),
    ]


def test_keyed_subscription_on_other_type_with_asset_id() -> None:
    bus, rec = Bus(), Recorder()
    bus.subscribe(FeedStale, rec.handler("stale-A"), key="A")
    bus.publish(FeedStale(feed="f", asset_id="A"))
    bus.publish(FeedStale(feed="f", asset_id="B"))
    assert [e.asset_id for _, e in rec.log] == ["A"]


# ------------------------------------------------------------------------------------ key routing


def test_keyed_handler_only_gets_its_asset() -> None:
    bus, rec = Bus(), Recorder()
    bus.subscribe(BookDelta, rec.handler("A"), key="A")
    bus.subscribe(BookDelta, rec.handler("B"), key="B")
    bus.subscribe(BookDelta, rec.handler("all"))
    for a in ("A", "B", "C", "A"):
        bus.publish(delta(a))
    assert [(n, e.asset_id) for n, e in rec.log] == [
        ("A", "A"), ("all", "A"),
        ("B", "B"), ("all", "B"),
        ("all", "C"),
        ("A", "A"), ("all", "A"),
    ]  # fmt: skip


def test_mixed_keyed_and_unkeyed_keep_subscription_order() -> None:
    bus, rec = Bus(), Recorder()
    bus.subscribe(BookDelta, rec.handler("u1"))
    bus.subscribe(BookDelta, rec.handler("kA1"), key="A")
    bus.subscribe(MarketDataEvent, rec.handler("u2"))
    bus.subscribe(BookDelta, rec.handler("kB"), key="B")
    bus.subscribe(Event, rec.handler("u3"))
    bus.subscribe(MarketDataEvent, rec.handler("kA2"), key="A")
    bus.publish(delta("A"))
    assert rec.names() == ["u1", "kA1", "u2", "u3", "kA2"]
    rec.log.clear()
    bus.publish(delta("B"))
    assert rec.names() == ["u1", "u2", "kB", "u3"]
    rec.log.clear()
    bus.publish(delta("Z"))
    assert rec.names() == ["u1", "u2", "u3"]
    rec.log.clear()
    bus.publish(trade("A"))
    assert rec.names() == ["u2", "u3", "kA2"]


def test_keyed_only_subscribers_and_unknown_key() -> None:
    bus, rec = Bus(), Recorder()
    bus.subscribe(BookDelta, rec.handler("kA"), key="A")
    bus.publish(delta("B"))
    assert rec.log == []
    bus.publish(delta("A"))
    assert rec.names() == ["kA"]


def test_handlers_for_matches_publish() -> None:
    bus, rec = Bus(), Recorder()
    u, k = rec.handler("u"), rec.handler("k")
    bus.subscribe(BookDelta, u)
    bus.subscribe(BookDelta, k, key="A")
    assert bus.handlers_for(delta("A")) == (u, k)
    assert bus.handlers_for(delta("B")) == (u,)
    assert bus.handlers_for(Halt()) == ()


# ------------------------------------------------------------------------------------ unsubscribe


def test_unsubscribe() -> None:
    bus, rec = Bus(), Recorder()
    a, b = rec.handler("a"), rec.handler("b")
    bus.subscribe(BookDelta, a)
    bus.subscribe(TradePrint, a)
    bus.subscribe(BookDelta, b, key="A")
    bus.publish(delta("A"))
    assert rec.names() == ["a", "b"]
    rec.log.clear()

    bus.unsubscribe(a, BookDelta)  # only that type
    bus.publish(delta("A"))
    bus.publish(trade("A"))
    assert rec.names() == ["b", "a"]
    rec.log.clear()

    bus.unsubscribe(a)  # every type
    bus.unsubscribe(b)
    bus.publish(delta("A"))
    bus.publish(trade("A"))
    assert rec.log == []
    bus.unsubscribe(a)  # unknown: a no-op


def test_unsubscribe_bound_method() -> None:
    class S:
        def __init__(self) -> None:
            self.n = 0

        def on(self, ev: Event) -> None:
            self.n += 1

    bus, s = Bus(), S()
    bus.subscribe(Halt, s.on)
    bus.publish(Halt())
    bus.unsubscribe(s.on)  # a fresh bound-method object compares equal
    bus.publish(Halt())
    assert s.n == 1


# ------------------------------------------------------------------------------------ re-entrancy


def test_publish_from_handler_is_fifo_not_recursive() -> None:
    bus, rec = Bus(), Recorder()
    depth = [0, 0]  # current, max
    b_ev = Resume(reason="B")
    c_ev = Halt(reason="C")

    def tracked(name: str, then: Any = None):  # noqa: ANN202
        inner = rec.handler(name, then)

        def h(ev: Event) -> None:
            depth[0] += 1
            depth[1] = max(depth[1], depth[0])
            try:
                inner(ev)
            finally:
                depth[0] -= 1

        return h

    def on_a(ev: Event) -> None:
        if isinstance(ev, Halt) and ev.reason == "A":
            bus.publish(b_ev)
            bus.publish(c_ev)

    bus.subscribe(Halt, tracked("h1", on_a))
    bus.subscribe(Event, tracked("h2"))
    bus.subscribe(Halt, tracked("h3"))
    bus.subscribe(Resume, tracked("r1"))
    a_ev = Halt(reason="A")
    bus.publish(a_ev)
    assert [(n, e.reason) for n, e in rec.log] == [
        # every handler of A first ...
        ("h1", "A"), ("h2", "A"), ("h3", "A"),
        # ... then B, then C, in the order they were published
        ("h2", "B"), ("r1", "B"),
        ("h1", "C"), ("h2", "C"), ("h3", "C"),
    ]  # fmt: skip
    assert depth[1] == 1
    assert bus.published == 3


def test_deep_chain_does_not_recurse() -> None:
    """10k events each published from the previous one's handler: no RecursionError."""
    bus = Bus()
    seen: list[int] = []
    depth = [0, 0]

    def h(ev: Halt) -> None:
        depth[0] += 1
        depth[1] = max(depth[1], depth[0])
        seen.append(ev.ts)
        if ev.ts < 10_000:
            bus.publish(Halt(ts=ev.ts + 1))
        depth[0] -= 1

    bus.subscribe(Halt, h)
    bus.publish(Halt(ts=1))
    assert seen == list(range(1, 10_001))
    assert depth[1] == 1


def test_subscribe_during_dispatch_sees_later_events() -> None:
    bus, rec = Bus(), Recorder()
    late = rec.handler("late")

    def first(ev: Halt) -> None:
        if ev.reason == "1":
            bus.subscribe(Halt, late)
            bus.publish(Halt(reason="2"))

    bus.subscribe(Halt, rec.handler("first", first))
    bus.publish(Halt(reason="1"))
    assert [(n, e.reason) for n, e in rec.log] == [("first", "1"), ("first", "2"), ("late", "2")]


def test_bus_reusable_after_dispatch() -> None:
    bus, rec = Bus(), Recorder()
    bus.subscribe(Halt, rec.handler("x"))
    for i in range(3):
        bus.publish(Halt(ts=i))
    assert [e.ts for _, e in rec.log] == [0, 1, 2]


# ------------------------------------------------------------------------------------ errors


def test_raising_handler_is_isolated_and_reported() -> None:
    bus, rec = Bus(), Recorder()

    def boom(ev: Event) -> None:
        raise ValueError("boom")

    boom.__qualname__ = "boom_handler"
    errors: list[HandlerError] = []
    bus.subscribe(Halt, rec.handler("before"))
    bus.subscribe(Halt, boom)
    bus.subscribe(Halt, rec.handler("after"))
    bus.subscribe(HandlerError, errors.append)
    ev = Halt(ts=42)
    bus.publish(ev)
    assert rec.names() == ["before", "after"]
    assert len(errors) == 1
    err = errors[0]
    assert err.handler == "boom_handler"
    assert err.event_type == "Halt"
    assert err.error == "ValueError: boom"
    assert err.ts == 42
    assert bus.handler_errors == 1
    # the error report is delivered after the failing event's other handlers
    bus.publish(Halt(ts=43))
    assert len(errors) == 2
    assert bus.handler_errors == 2


def test_error_event_is_queued_after_pending_events() -> None:
    bus, rec = Bus(), Recorder()

    def h(ev: Halt) -> None:
        if ev.reason == "first":
            bus.publish(Resume(reason="queued"))
            raise RuntimeError("x")

    bus.subscribe(Halt, h)
    bus.subscribe(Event, rec.handler("all"))
    bus.publish(Halt(reason="first"))
    assert [type(e).__name__ for _, e in rec.log] == ["Halt", "Resume", "HandlerError"]


def test_raising_error_handler_does_not_loop() -> None:
    bus = Bus()
    calls: list[Event] = []

    def bad_error_handler(ev: HandlerError) -> None:
        calls.append(ev)
        raise RuntimeError("error handler broken too")

    def boom(ev: Event) -> None:
        raise ValueError("boom")

    bus.subscribe(Halt, boom)
    bus.subscribe(HandlerError, bad_error_handler)
    bus.publish(Halt())
    assert len(calls) == 1
    assert bus.handler_errors == 2
    assert bus.published == 2


def test_wildcard_handler_that_always_raises_does_not_loop() -> None:
    bus = Bus()
    calls: list[Event] = []

    def always(ev: Event) -> None:
        calls.append(ev)
        raise KeyError("k")

    bus.subscribe(Event, always)
    bus.publish(Halt())
    assert [type(e).__name__ for e in calls] == ["Halt", "HandlerError"]
    assert bus.handler_errors == 2


def test_handler_name() -> None:
    class Strat:
        def on_book(self, ev: Event) -> None:
            pass

    assert handler_name(Strat().on_book).endswith("Strat.on_book")

    def f(ev: Event) -> None:
        pass

    assert handler_name(f).endswith("f")


# ------------------------------------------------------------------------------------ model test

ASSETS = ("A", "B", "C")
SUB_CLASSES = (BookDelta, TradePrint, MarketDataEvent, Event, Halt)


def make_event(kind: int, asset: str, eid: int) -> Event:
    if kind == 0:
        return BookDelta(ts=eid, asset_id=asset, side="ASK", price=1, size=1)
    if kind == 1:
        return TradePrint(ts=eid, asset_id=asset, price=1, size=1)
    return Halt(ts=eid)


@st.composite
def programs(draw: st.DrawFn) -> dict[str, Any]:
    n_handlers = draw(st.integers(1, 5))
    subs = []
    for _ in range(n_handlers):
        cls = draw(st.sampled_from(SUB_CLASSES))
        keyable = "asset_id" in getattr(cls, "__struct_fields__", ())
        key = draw(st.sampled_from((None, *ASSETS))) if keyable else None
        subs.append((cls, key))
    n_events = draw(st.integers(1, 25))
    events = []
    for eid in range(n_events):
        kind = draw(st.integers(0, 2))
        asset = draw(st.sampled_from(ASSETS))
        # event 0 and some others are published from outside; the rest by (parent, handler)
        if eid == 0 or draw(st.booleans()) and draw(st.booleans()):
            parent = None
        else:
            parent = (draw(st.integers(0, eid - 1)), draw(st.integers(0, n_handlers - 1)))
        events.append((kind, asset, parent))
    return {"subs": subs, "events": events}


def reference_run(prog: dict[str, Any]) -> list[tuple[int, int]]:
    """The contract, written as directly as possible: one FIFO queue, subscription order."""
    subs, events = prog["subs"], prog["events"]
    evs = [make_event(k, a, i) for i, (k, a, _) in enumerate(events)]
    children: dict[tuple[int, int], list[int]] = {}
    for i, (_, _, parent) in enumerate(events):
        if parent is not None:
            children.setdefault(parent, []).append(i)
    log: list[tuple[int, int]] = []
    for root in [i for i, e in enumerate(events) if e[2] is None]:
        q = deque([root])
        while q:
            eid = q.popleft()
            ev = evs[eid]
            for hi, (cls, key) in enumerate(subs):
                if isinstance(ev, cls) and (key is None or getattr(ev, "asset_id", None) == key):
                    log.append((hi, eid))
                    q.extend(children.get((eid, hi), ()))
    return log


@settings(max_examples=300, deadline=None)
@given(programs())
def test_random_publish_from_handler_matches_fifo_model(prog: dict[str, Any]) -> None:
    subs, events = prog["subs"], prog["events"]
    evs = [make_event(k, a, i) for i, (k, a, _) in enumerate(events)]
    children: dict[tuple[int, int], list[int]] = {}
    for i, (_, _, parent) in enumerate(events):
        if parent is not None:
            children.setdefault(parent, []).append(i)

    bus = Bus()
    log: list[tuple[int, int]] = []
    depth = [0, 0]

    def make_handler(hi: int):  # noqa: ANN202
        def h(ev: Event) -> None:
            depth[0] += 1
            depth[1] = max(depth[1], depth[0])
            log.append((hi, ev.ts))
            for c in children.get((ev.ts, hi), ()):
                bus.publish(evs[c])
            depth[0] -= 1

        return h

    for hi, (cls, key) in enumerate(subs):
        bus.subscribe(cls, make_handler(hi), key=key)
    for i, (_, _, parent) in enumerate(events):
        if parent is None:
            bus.publish(evs[i])

    assert log == reference_run(prog)
    assert depth[1] <= 1
    assert bus.handler_errors == 0


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["sub", "unsub", "pub"]), st.integers(0, 3),
                              st.sampled_from([BookDelta, BookSnapshot, TradePrint, Event]),
                              st.sampled_from([None, "a", "b"])), max_size=40))
def test_routing_cache_matches_the_subscriptions(ops: list) -> None:
    """Whatever the order of subscribes, unsubscribes and publishes (the cache is dropped only
    for the classes a change touches), every event reaches exactly the handlers a fresh bus
    with the same subscriptions would call, in the same order."""
    bus = Bus()
    got: list = []
    handlers = [lambda ev, i=i: got.append((i, type(ev).__name__)) for i in range(4)]
    subs: list = []  # reference: (handler index, class, key) in subscription order
    for op, i, cls, key in ops:
        if op == "sub":
            if key is not None and cls is Event:
                continue
            bus.subscribe(cls, handlers[i], key=key)
            subs.append((i, cls, key))
        elif op == "unsub":
            bus.unsubscribe(handlers[i], cls)
            subs = [s for s in subs if not (s[0] == i and s[1] is cls)]
        else:
            ev_cls = BookSnapshot if cls is Event else cls
            ev = ev_cls(asset_id=key or "z", **({"side": "BID", "price": 1, "size": 1} if ev_cls is BookDelta else
                                                 {"price": 1, "size": 1} if ev_cls is TradePrint else {}))
            got.clear()
            bus.publish(ev)
            expect = [(i_, ev_cls.__name__) for i_, c, k in subs if isinstance(ev, c) and (k is None or k == ev.asset_id)]
            assert got == expect
