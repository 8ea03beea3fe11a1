"""The kernel's contracts: the one door, submit(), write-ahead, timers, control, state."""

from __future__ import annotations

import msgspec
import pytest

from polybot.events import (
    ENCODER,
    BookDelta,
    BookSnapshot,
    Halt,
    InputDropped,
    OrderAccepted,
    OrderStateError,
    OrderFilled,
    OrderRejected,
    OrderIntent,
    OrderPlan,
    OrderSubmitted,
    RiskApproved,
    RiskRejected,
    TimerFired,
)
from polybot.execution import Executor
from polybot.journal import ENGINE_EVENT, INPUT, JournalReader, JournalWriter
from polybot.kernel import Kernel
from polybot.risk import PassThrough, RiskChain, TradingStateValidator, reject, resize
from polybot.strategy import Strategy, StrategyParams, Units

A, B = "asset-a", "asset-b"


def snap(asset: str = A, bid: int = 400_000, ask: int = 420_000) -> bytes:
    return ENCODER.encode(BookSnapshot(asset_id=asset, market="m1", bids=((bid, 100_000_000),), asks=((ask, 50_000_000),)))


def intent(asset: str = A, side: str = "BUY", price: int = 420_000, size: int = 10_000_000, **kw) -> OrderIntent:
    return OrderIntent(strategy="", asset_id=asset, side=side, price=price, size=size, **kw)  # type: ignore[arg-type]


class Recorder:
    def __init__(self, k: Kernel, *types: type) -> None:
        self.events: list = []
        for t in types:
            k.bus.subscribe(t, self.events.append)


class SpyExecutor(Executor):
    """Records the journal's state at the moment each order is handed over."""

    name = "spy"

    def __init__(self, journal_path=None) -> None:  # noqa: ANN001
        super().__init__()
        self.journal_path = journal_path
        self.seen: list[tuple[str, bool]] = []
        self.cancels: list[str] = []

    def submit(self, order) -> None:  # noqa: ANN001
        on_disk = self.journal_path.read_bytes() if self.journal_path else b""
        self.seen.append((order.client_id, f'"client_id":"{order.client_id}"'.encode() in on_disk))

    def cancel(self, order) -> None:  # noqa: ANN001
        self.cancels.append(order.client_id)


# ------------------------------------------------------------------------------ the door


def test_door_journals_input_before_events_reach_handlers(tmp_path):
    jp = tmp_path / "j.jsonl"
    k = Kernel(journal=JournalWriter(jp, fsync="never"))
    seen_lines = []

    def handler(ev):  # noqa: ANN001
        k.journal.flush()
        seen_lines.append(jp.read_bytes().count(b"\n"))

    k.bus.subscribe(BookSnapshot, handler)
    k.process(10, "events", snap())
    assert seen_lines == [1]
    k.journal.close()
    (kind, ts, source, msg), = list(JournalReader(jp))
    assert (kind, ts, source, msg) == (INPUT, 10, "events", snap())


def test_invalid_json_is_journaled_as_a_string_and_counted(tmp_path):
    jp = tmp_path / "j.jsonl"
    k = Kernel(journal=JournalWriter(jp, fsync="never"))
    drops = Recorder(k, InputDropped)
    k.process(1, "events", b"PONG")
    k.process(2, "events", b'{"type":"book_delta","asset_id":"x"}')  # schema: missing fields
    k.process(3, "nosuch", b"{not json")
    k.process(4, "events", b'{"type":"no_such_event"}')
    k.journal.close()
    msgs = [m for _k, _t, _s, m in JournalReader(jp)]
    assert msgs[0] == b'"PONG"' and msgs[2] == b'"{not json"'
    assert len(msgs) == 4, "no input is ever lost"
    assert k.stats.dropped == 4
    assert {d.reason for d in drops.events} == {"malformed", "schema", "unknown_source"}
    assert k.stats.drop_reasons["nosuch:unknown_source"] == 1


def test_bad_value_from_a_decoder_is_dropped_not_raised():
    k = Kernel()

    def dec(msg, ts):  # noqa: ANN001
        raise ValueError("price outside (0, 1)")

    k.add_decoder("feed", dec)
    k.process(1, "feed", b"{}")
    assert k.stats.drop_reasons["feed:bad_value"] == 1


def test_redaction_applies_before_journal_and_decode(tmp_path):
    jp = tmp_path / "j.jsonl"
    k = Kernel(journal=JournalWriter(jp, fsync="never"))
    got = []
    k.add_decoder("user", lambda m, ts: got.append(m) or ())
    k.add_redaction("user", "secret-api-key", "key-1")
    k.process(1, "user", b'{"owner":"secret-api-key"}')
    k.journal.close()
    assert b"secret-api-key" not in jp.read_bytes()
    assert got == [b'{"owner":"key-1"}']


def test_clock_clamps_backwards_time():
    k = Kernel()
    k.process(100, "events", snap())
    k.process(50, "events", snap())
    assert k.clock.now() == 100 and k.clock.clamped == 1


def test_objects_and_text_frames_enter_the_door():
    k = Kernel()
    k.process(1, "control", Halt(reason="x"))
    assert k.trading_state == "halted"
    k.process(2, "control", '{"type":"resume"}')
    assert k.trading_state == "active"


# ------------------------------------------------------------------------------ submit


def test_submit_approves_reserves_and_writes_ahead(tmp_path):
    jp = tmp_path / "j.jsonl"
    spy = SpyExecutor(jp)
    k = Kernel(executor=spy, journal=JournalWriter(jp, fsync="orders"))
    rec = Recorder(k, RiskApproved, OrderSubmitted)
    k.process(1, "events", snap())
    d = k.submit("s1", intent())
    assert d.approved and d.client_ids == ("pb-1",)
    assert spy.seen == [("pb-1", True)], "the order is on disk before the executor sees it"
    assert k.exposure.total == 4_200_000  # 10 shares x 0.42
    assert k.journal.syncs >= 1
    assert [type(e) for e in rec.events] == [RiskApproved, OrderSubmitted]
    k.journal.close()


def test_second_strategy_on_same_event_sees_first_reservation():
    k = Kernel(risk=RiskChain([TradingStateValidator()]))
    seen = []

    class First(Strategy):
        name = "first"

        def on_start(self) -> None:
            self.ctx.subscribe(BookSnapshot, lambda ev: self.ctx.submit(intent()))

    class Second(Strategy):
        name = "second"

        def on_start(self) -> None:
            self.ctx.subscribe(BookSnapshot, lambda ev: seen.append(k.exposure.total))

    k.add_strategy(First, "first", {})
    k.add_strategy(Second, "second", {})
    k.start()
    k.process(1, "events", snap())
    assert seen == [4_200_000]


def test_raising_validator_rejects_fail_closed():
    class Boom:
        name = "boom"

        def check(self, intent, ctx):  # noqa: ANN001
            raise RuntimeError("bug")

    k = Kernel(risk=RiskChain([Boom()]))
    rec = Recorder(k, RiskRejected, OrderSubmitted)
    d = k.submit("s", intent())
    assert not d.approved and d.validator == "boom" and "RuntimeError" in d.reason
    assert [type(e) for e in rec.events] == [RiskRejected]
    assert k.exposure.total == 0 and not k.orders.open_orders()


def test_plan_passes_whole_or_not_at_all():
    class RejectB:
        name = "no_b"

        def check(self, it, ctx):  # noqa: ANN001
            return reject(self.name, "B is banned") if it.asset_id == B else PassThrough().check(it, ctx)

    k = Kernel(risk=RiskChain([RejectB()]))
    d = k.submit("s", OrderPlan(strategy="s", plan_id="", legs=(intent(A), intent(B))))
    assert not d.approved and len(d.client_ids) == 2
    assert not k.orders.open_orders() and k.exposure.total == 0


def test_plan_resize_applies_one_size_to_every_leg():
    class HalveA:
        name = "cap"

        def check(self, it, ctx):  # noqa: ANN001
            return resize(self.name, 4_000_000, "cap") if it.asset_id == A and it.size > 4_000_000 else PassThrough().check(it, ctx)

    k = Kernel(risk=RiskChain([HalveA()]))
    d = k.submit("s", OrderPlan(strategy="s", plan_id="p", legs=(intent(A), intent(B))))
    assert d.action == "resize"
    assert sorted(o.intent.size for o in k.orders.open_orders()) == [4_000_000, 4_000_000]
    # a plan that is exact only at its planned size asks for a rejection instead
    d = k.submit("s", OrderPlan(strategy="s", plan_id="q", legs=(intent(A), intent(B)), resizable=False))
    assert d.action == "reject" and d.validator == "cap" and d.reason.endswith("the plan is not resizable")
    assert d.size == 4_000_000  # what the chain would allow: the strategy may plan again at it
    assert len(k.orders.open_orders()) == 2


def test_submit_refuses_nonsense_sizes():
    k = Kernel()
    assert not k.submit("s", intent(size=0)).approved
    assert not k.submit("s", intent(size=1_234_567)).approved  # not on the 0.01 lot
    assert not k.submit("s", intent(price=0)).approved
    d = k.submit("s", intent(side="SELL", price=1_000_000))  # a share never sells for 1 or more
    assert not d.approved and d.validator == "kernel" and "not below 1" in d.reason
    assert k.exposure.total == 0


def test_fill_updates_portfolio_and_releases_exposure():
    k = Kernel(executor=SpyExecutor())
    k.submit("s", intent())
    fill = OrderFilled(client_id="pb-1", asset_id=A, trade_id="t1", side="BUY", price=420_000, size=10_000_000,
                       liquidity="taker", fee=10_000)
    k.process(2, "exec.spy", ENCODER.encode([OrderAccepted(client_id="pb-1"), fill]))
    assert k.portfolio.size(A) == 10_000_000 and k.portfolio.size(A, "s") == 10_000_000
    assert k.exposure.total == 0
    assert k.orders.get("pb-1").state == "filled"
    # a late acknowledgement is moot; an impossible transition is reported, not applied
    errors: list = []
    k.bus.subscribe(OrderStateError, errors.append)
    k.process(3, "exec.spy", ENCODER.encode([OrderAccepted(client_id="pb-1")]))
    assert k.orders.get("pb-1").state == "filled" and k.stats.illegal_transitions == 0 and not errors
    k.process(4, "exec.spy", ENCODER.encode([OrderRejected(client_id="pb-1", reason="late")]))
    assert k.orders.get("pb-1").state == "filled" and k.stats.illegal_transitions == 1
    assert [(e.client_id, e.event_type, e.from_state, e.to_state) for e in errors] == [
        ("pb-1", "order_rejected", "filled", "rejected")
    ]


# ------------------------------------------------------------------------------ control, timers


def test_halt_rejects_and_reduce_only_lets_sells_through():
    k = Kernel(executor=SpyExecutor())
    k.process(1, "control", b'{"type":"halt","reason":"test"}')
    assert not k.submit("s", intent()).approved
    k.process(2, "control", b'{"type":"reduce"}')
    assert not k.submit("s", intent()).approved
    k.portfolio.apply_fill("s", OrderFilled(client_id="x", trade_id="t", side="BUY", price=1, size=10_000_000, liquidity="taker", asset_id=A))
    assert k.submit("s", intent(side="SELL", size=10_000_000)).approved


def test_timers_fire_on_clock_ticks_only_when_live():
    k = Kernel()
    fired = Recorder(k, TimerFired)

    class T(Strategy):
        name = "t"

        def on_start(self) -> None:
            self.ctx.set_timer("a", at_ns=100)

        def on_timer(self, ev: TimerFired) -> None:
            fired.events.append(("strategy", ev.name))

    k.add_strategy(T, "t", {})
    k.start()
    k.process(150, "events", snap())
    assert not fired.events, "no tick yet: a live kernel waits for the journaled tick"
    k.process(160, "clock", b"{}")
    assert [e.name for e in fired.events if isinstance(e, TimerFired)] == ["a"]
    assert ("strategy", "a") in fired.events


def test_what_if_synthesizes_journaled_ticks(tmp_path):
    jp = tmp_path / "j.jsonl"
    k = Kernel(synthesize_timers=True, journal=JournalWriter(jp, fsync="never"))
    k.timers.set("x", "a", 100)
    k.process(150, "events", snap())
    k.journal.close()
    rows = [(kind, ts, s) for kind, ts, s, _m in JournalReader(jp)]
    assert rows[:3] == [(INPUT, 100, "clock"), (ENGINE_EVENT, 100, "engine"), (INPUT, 150, "events")]


def test_set_params_is_validated_and_enable_disable_unsubscribes():
    k = Kernel()
    calls = []

    class S(Strategy):
        name = "s"

        class Params(StrategyParams):
            n: int = 1

        def on_start(self) -> None:
            self.ctx.subscribe(BookSnapshot, lambda ev: calls.append(self.params.n))

    k.add_strategy(S, "s", {})
    k.start()
    k.process(1, "control", b'{"type":"set_params","strategy":"s","params":{"n":5}}')
    k.process(2, "control", b'{"type":"set_params","strategy":"s","params":{"n":"bad"}}')
    k.process(3, "events", snap())
    assert calls == [5]
    assert k.stats.drop_reasons["control:bad_params"] == 1
    k.process(4, "control", b'{"type":"enable_strategy","strategy":"s","enabled":false}')
    k.process(5, "events", snap())
    assert calls == [5]
    k.process(6, "control", b'{"type":"enable_strategy","strategy":"s","enabled":true}')
    k.process(7, "events", snap())
    assert calls == [5, 5]


def test_control_source_refuses_non_control_events():
    k = Kernel()
    k.process(1, "control", snap())
    assert k.stats.drop_reasons["control:bad_value"] == 1 and not k.books


def test_flatten_cancels_then_sells_positions(tmp_path):
    spy = SpyExecutor()
    k = Kernel(executor=spy)
    k.process(1, "events", snap(bid=400_000))
    k.submit("s", intent(price=300_000))  # resting buy
    k.portfolio.apply_fill("s", OrderFilled(client_id="x", trade_id="t", side="BUY", price=1, size=20_000_000, liquidity="taker", asset_id=A))
    k.process(2, "control", b'{"type":"flatten","max_slippage":20000}')
    assert spy.cancels == ["pb-1"]
    assert k.trading_state == "reducing"
    sells = [o for o in k.orders.open_orders() if o.intent.side == "SELL"]
    assert len(sells) == 1 and sells[0].intent.size == 20_000_000 and sells[0].intent.price == 380_000


def test_crossed_book_marks_unhealthy():
    k = Kernel()
    k.process(1, "events", snap(bid=400_000, ask=420_000))
    assert k.books.is_healthy(A)
    k.process(2, "events", ENCODER.encode(BookDelta(asset_id=A, side="BID", price=430_000, size=1_000_000)))
    assert not k.books.is_healthy(A) and k.books[A].unhealthy_reason == "crossed book"
    k.process(3, "events", snap())
    assert k.books.is_healthy(A)


# ------------------------------------------------------------------------------ state


def test_state_round_trip_is_exact():
    k = Kernel(executor=SpyExecutor())
    k.process(1, "events", snap())
    k.submit("s", intent())
    k.process(2, "control", b'{"type":"halt"}')
    k.timers.set("s", "later", 999)
    st = msgspec.json.decode(msgspec.json.encode(k.to_state()))
    k2 = Kernel(executor=SpyExecutor())
    k2.restore(st)
    assert msgspec.json.decode(msgspec.json.encode(k2.to_state())) == st
    assert k2.trading_state == "halted" and k2.exposure.total == k.exposure.total
    assert k2.submit("s", intent()).client_ids == ("pb-2",), "ids continue after a restart"


def test_restore_refuses_another_version():
    with pytest.raises(ValueError):
        Kernel().restore({"version": 999})


def test_set_params_keeps_the_units_params_it_does_not_change():
    """A run-time change of one param leaves the others as they were: a ``Units`` param (0.45
    -> 450_000) is not re-read as whole units (450_000 pUSD) when the params are merged."""

    k = Kernel()

    class S(Strategy):
        name = "s"

        class Params(StrategyParams):
            price: Units = Units(450_000)
            sizes: list[Units] = []
            n: int = 1

    k.add_strategy(S, "s", {"price": "0.45", "sizes": ["1.5", 2]})
    k.start()
    k.process(1, "control", b'{"type":"set_params","strategy":"s","params":{"n":5}}')
    p = k.strategies["s"].params
    assert (p.price, p.sizes, p.n) == (450_000, [1_500_000, 2_000_000], 5)
    k.process(2, "control", b'{"type":"set_params","strategy":"s","params":{"price":"0.5"}}')
    assert k.strategies["s"].params.price == 500_000 and k.strategies["s"].params.n == 5


def test_two_cancels_of_one_order_in_one_handler_send_one_request():
    """The CancelSubmitted of the first cancel is still queued when a handler cancels again:
    the second call sends nothing (no duplicate venue request, no second cancel token)."""
    from polybot.events import CancelSubmitted

    ex = SpyExecutor()
    k = Kernel(executor=ex)
    out: list[bool] = []

    class S(Strategy):
        name = "s"

        def on_start(self) -> None:
            self.ctx.subscribe(BookSnapshot, self.on_book)

        def on_book(self, ev: BookSnapshot) -> None:
            if not self.ctx.open_orders():
                self.ctx.submit(intent())
            else:
                cid = self.ctx.open_orders()[0].client_id
                out.extend([self.ctx.cancel(cid), self.ctx.cancel(cid)])

    k.add_strategy(S, "s", {})
    k.start()
    seen = Recorder(k, CancelSubmitted)
    k.process(1, "events", snap())
    k.process(2, "events", snap())
    assert out == [True, False]
    assert len(seen.events) == 1 and len(ex.cancels) == 1


def test_disabling_a_strategy_cancels_its_open_orders():
    """Nobody manages a disabled strategy's quotes: they are cancelled (journaled cancels);
    another strategy's orders stay."""
    k = Kernel()

    class S(Strategy):
        name = "s"

        def on_start(self) -> None:
            self.ctx.subscribe(BookSnapshot, self.on_book)

        def on_book(self, ev: BookSnapshot) -> None:
            if not self.ctx.open_orders():
                self.ctx.submit(intent(price=400_000))

    k.add_strategy(S, "a", {})
    k.add_strategy(S, "b", {})
    k.start()
    k.process(1, "events", snap())
    assert len(k.orders.open_orders("a")) == 1 and len(k.orders.open_orders("b")) == 1
    k.process(2, "control", b'{"type":"enable_strategy","strategy":"a","enabled":false}')
    assert k.orders.open_orders("a") == [] and len(k.orders.open_orders("b")) == 1
    k.process(3, "events", snap())  # a gets no events now: no new order
    assert k.orders.open_orders("a") == []
