"""Clocks and timers.

* :class:`LiveClock` reads the wall clock. Only adapters, the daemon's timer task and the CLI use
  it: they stamp inbound records with it.
* :class:`ReplayClock` is the kernel's clock, live and in replay alike: it is driven by the
  receive times of the records the kernel processes. Times that go backwards (bare recordings,
  a stepped system clock) are clamped to the last time, never reordered.
* :class:`Timers` is the kernel's timer queue. Timers fire only when the kernel processes a clock
  tick (live: the daemon journals a tick when the earliest deadline passes, so replay fires them
  at exactly the same point) or, in what-if replay, when the replay clock passes a deadline.
"""

from __future__ import annotations

import heapq
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int: ...


class LiveClock:
    """Wall-clock nanoseconds (the receive-time stamp of live inputs)."""

    __slots__ = ()

    def now(self) -> int:
        return time.time_ns()


class ReplayClock:
    """Time of the input being processed; monotonic by clamping."""

    __slots__ = ("_now", "clamped")

    def __init__(self, start: int = 0) -> None:
        self._now = start
        self.clamped = 0

    def now(self) -> int:
        return self._now

    def advance(self, ts: int) -> int:
        """Move to ``ts`` (or stay, counting a clamp, if ``ts`` is in the past)."""
        if ts < self._now:
            self.clamped += 1
            return self._now
        self._now = ts
        return ts


class Timers:
    """Deadline-ordered timers keyed by (owner, name); re-arming a name replaces it."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str, str]] = []
        self._live: dict[tuple[str, str], tuple[int, int]] = {}
        self._seq = 0
        self.on_change: list = []  # callbacks(new_earliest_deadline) for the live timer task

    def set(self, owner: str, name: str, deadline: int) -> None:
        self._seq += 1
        self._live[(owner, name)] = (deadline, self._seq)
        heapq.heappush(self._heap, (deadline, self._seq, owner, name))
        if self._heap[0][1] == self._seq:
            for cb in self.on_change:
                cb(deadline)

    def cancel(self, owner: str, name: str) -> bool:
        return self._live.pop((owner, name), None) is not None

    def cancel_owner(self, owner: str) -> None:
        for k in [k for k in self._live if k[0] == owner]:
            del self._live[k]

    def next_deadline(self) -> int | None:
        heap = self._heap
        while heap:
            d, seq, owner, name = heap[0]
            if self._live.get((owner, name)) == (d, seq):
                return d
            heapq.heappop(heap)  # cancelled or re-armed
        return None

    def pop_due(self, now: int) -> list[tuple[int, str, str]]:
        """Remove and return the timers due at ``now`` as (deadline, owner, name), in order."""
        out: list[tuple[int, str, str]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            d, seq, owner, name = heapq.heappop(heap)
            if self._live.get((owner, name)) == (d, seq):
                del self._live[(owner, name)]
                out.append((d, owner, name))
        return out

    def pending(self) -> list[tuple[int, str, str]]:
        """Live timers in firing order (deadline, then the order they were set in), which is
        the order :meth:`restore` needs to keep timers due at the same moment in sequence."""
        items = sorted((d, seq, o, n) for (o, n), (d, seq) in self._live.items())
        return [(d, o, n) for d, _seq, o, n in items]

    def restore(self, items: list[tuple[int, str, str]]) -> None:
        self._heap.clear()
        self._live.clear()
        for d, o, n in items:
            self.set(o, n, d)


_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_to_ns(text: str) -> int:
    """ISO-8601 (``2026-10-05T23:15:00Z``, ``…46.486981Z``, ``2026-07-24 00:00:16+00``,
    ``2026-10-05``) -> ns since the epoch, exactly (no zone = UTC)."""
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not an ISO-8601 time: {text!r}")
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), tzinfo=timezone.utc)
    s = (dt - _EPOCH) // timedelta(seconds=1)
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        s -= sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60)
    return s * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
