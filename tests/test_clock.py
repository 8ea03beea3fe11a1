"""polybot.clock: the replay clock (monotonic by clamping) and the timer queue."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.clock import LiveClock, ReplayClock, Timers

# ------------------------------------------------------------------------------------ clocks


def test_replay_clock_clamps_backwards_times() -> None:
    c = ReplayClock(start=100)
    assert c.now() == 100 and c.clamped == 0
    assert c.advance(150) == 150 and c.now() == 150
    assert c.advance(150) == 150 and c.clamped == 0  # equal is not backwards
    assert c.advance(120) == 150 and c.now() == 150 and c.clamped == 1
    assert c.advance(0) == 150 and c.clamped == 2
    assert c.advance(151) == 151 and c.clamped == 2
    assert ReplayClock().now() == 0


@given(st.integers(0, 2**62), st.lists(st.integers(0, 2**62), max_size=50))
def test_replay_clock_is_running_max(start: int, times: list[int]) -> None:
    c = ReplayClock(start)
    hi, clamps = start, 0
    for t in times:
        got = c.advance(t)
        if t < hi:
            clamps += 1
        hi = max(hi, t)
        assert got == c.now() == hi
    assert c.clamped == clamps


def test_live_clock_reads_integer_nanoseconds() -> None:
    a = LiveClock().now()
    b = LiveClock().now()
    assert type(a) is int and a > 1_600_000_000 * 10**9 and b >= a - 10**9


# ------------------------------------------------------------------------------------ timers


def test_pop_due_in_deadline_order() -> None:
    t = Timers()
    t.set("s1", "c", 300)
    t.set("s1", "a", 100)
    t.set("s2", "b", 200)
    t.set("s2", "tie", 200)  # same deadline: in the order they were armed
    assert t.next_deadline() == 100
    assert t.pop_due(99) == []
    assert t.pop_due(200) == [(100, "s1", "a"), (200, "s2", "b"), (200, "s2", "tie")]
    assert t.pop_due(200) == []  # popped timers are gone
    assert t.next_deadline() == 300
    assert t.pending() == [(300, "s1", "c")]
    assert t.pop_due(10**18) == [(300, "s1", "c")]
    assert t.next_deadline() is None and t.pending() == []


def test_rearming_replaces() -> None:
    t = Timers()
    t.set("s", "x", 100)
    t.set("s", "x", 500)  # later: the 100 deadline must not fire
    assert t.next_deadline() == 500
    assert t.pop_due(400) == []
    t.set("s", "x", 50)  # earlier again
    assert t.pending() == [(50, "s", "x")]
    assert t.pop_due(1000) == [(50, "s", "x")]
    assert t.pop_due(1000) == []


def test_same_name_different_owners_are_different_timers() -> None:
    t = Timers()
    t.set("a", "tick", 10)
    t.set("b", "tick", 20)
    assert t.pending() == [(10, "a", "tick"), (20, "b", "tick")]


def test_cancel() -> None:
    t = Timers()
    t.set("s", "x", 100)
    t.set("s", "y", 200)
    assert t.cancel("s", "x") is True
    assert t.cancel("s", "x") is False
    assert t.cancel("nobody", "x") is False
    assert t.next_deadline() == 200  # skips the cancelled one
    assert t.pop_due(1000) == [(200, "s", "y")]
    assert t.next_deadline() is None


def test_cancel_then_rearm_same_deadline() -> None:
    t = Timers()
    t.set("s", "x", 100)
    t.cancel("s", "x")
    t.set("s", "x", 100)
    assert t.pop_due(100) == [(100, "s", "x")]  # fires exactly once
    assert t.pop_due(100) == []


def test_cancel_owner() -> None:
    t = Timers()
    t.set("a", "1", 10)
    t.set("a", "2", 20)
    t.set("b", "1", 15)
    t.cancel_owner("a")
    t.cancel_owner("nobody")
    assert t.pending() == [(15, "b", "1")]
    assert t.next_deadline() == 15
    assert t.pop_due(100) == [(15, "b", "1")]


def test_on_change_reports_a_new_earliest_deadline() -> None:
    t = Timers()
    seen: list[int] = []
    t.on_change.append(seen.append)
    t.set("s", "a", 100)
    t.set("s", "b", 200)  # not the earliest: no news
    t.set("s", "c", 50)
    assert seen == [100, 50]


def test_restore_round_trip() -> None:
    t = Timers()
    for o, n, d in [("s1", "a", 300), ("s2", "b", 100), ("s1", "c", 200), ("s3", "z", 100)]:
        t.set(o, n, d)
    t.set("s1", "a", 250)  # re-armed: only the new deadline survives
    t.set("gone", "x", 1)
    t.cancel("gone", "x")
    state = t.pending()
    assert state == [(100, "s2", "b"), (100, "s3", "z"), (200, "s1", "c"), (250, "s1", "a")]
    other = Timers()
    other.set("junk", "j", 5)
    other.restore([tuple(x) for x in state])
    assert other.pending() == state
    assert other.next_deadline() == 100
    assert other.pop_due(10**9) == state


# ------------------------------------------------------------------------------------ model test

OWNERS = ("a", "b")
NAMES = ("x", "y", "z")
op = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(OWNERS), st.sampled_from(NAMES), st.integers(0, 50)),
    st.tuples(st.just("cancel"), st.sampled_from(OWNERS), st.sampled_from(NAMES), st.just(0)),
    st.tuples(st.just("cancel_owner"), st.sampled_from(OWNERS), st.just(""), st.just(0)),
    st.tuples(st.just("pop"), st.just(""), st.just(""), st.integers(0, 60)),
    st.tuples(st.just("next"), st.just(""), st.just(""), st.just(0)),
)


@settings(max_examples=300)
@given(st.lists(op, max_size=60))
def test_timers_match_dict_model(ops: list[tuple[str, str, str, int]]) -> None:
    t = Timers()
    model: dict[tuple[str, str], tuple[int, int]] = {}  # key -> (deadline, arm order)
    seq = 0
    for kind, owner, name, val in ops:
        if kind == "set":
            seq += 1
            model[(owner, name)] = (val, seq)
            t.set(owner, name, val)
        elif kind == "cancel":
            assert t.cancel(owner, name) == ((owner, name) in model)
            model.pop((owner, name), None)
        elif kind == "cancel_owner":
            t.cancel_owner(owner)
            model = {k: v for k, v in model.items() if k[0] != owner}
        elif kind == "pop":
            due = sorted((d, s, o, n) for (o, n), (d, s) in model.items() if d <= val)
            assert t.pop_due(val) == [(d, o, n) for d, _s, o, n in due]
            for _d, _s, o, n in due:
                del model[(o, n)]
        else:
            assert t.next_deadline() == (min(d for d, _ in model.values()) if model else None)
        # firing order: deadline, then the order they were armed in
        assert t.pending() == [(d, o, n) for d, _s, o, n in sorted((d, s, o, n) for (o, n), (d, s) in model.items())]
    assert t.next_deadline() == (min(d for d, _ in model.values()) if model else None)
