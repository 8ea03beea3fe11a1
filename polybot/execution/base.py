"""Executors: one interface, several implementations; strategies cannot tell which one runs.

The kernel calls :meth:`Executor.submit` / :meth:`Executor.cancel` synchronously, *after* the order
(or cancel) has been journaled and fsynced. An executor answers in one of two ways:

* **simulated** executors (null, and the paper executor) are deterministic functions of the
  kernel's state: they answer at once through ``kernel.emit(...)``; their answers are engine
  events, recomputed identically by any replay.
* **asynchronous** executors (the live CLOB executor, and :class:`LoopbackExecutor` here) queue
  the work for their own task (signing and network I/O never run inside a bus handler) and send
  every response back through the kernel's one door as an inbound record from source
  ``exec.<name>``. Those records are journaled like market data, so a faithful replay feeds them
  back (through :class:`RecordedExecutor`) and reproduces the live decisions exactly.
"""

from __future__ import annotations

import abc
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectSendStream

from ..events import ENCODER, OrderAccepted, OrderCancelled, OrderFilled, PositionActionDone

if TYPE_CHECKING:  # pragma: no cover
    from ..clock import Clock
    from ..events import PositionAction
    from ..kernel import InboundRecord, Kernel
    from .orders import Order


async def batches(recv: Any, limit: int) -> AsyncIterator[list[Any]]:
    """The requests of an executor's queue (a memory stream) in batches: wait for one, then take
    whatever else is already waiting, up to ``limit``, without waiting (the requests queued while
    the task was busy go out together). Ends when the stream is closed."""
    async with recv:
        while True:
            try:
                batch = [await recv.receive()]
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            while len(batch) < limit:
                try:
                    batch.append(recv.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
            yield batch


class Executor(abc.ABC):
    """Base class. ``asynchronous`` executors also implement :meth:`run`."""

    name = "executor"
    asynchronous = False
    #: collateral the account starts with (the portfolio's starting cash); a paper executor's
    #: configured balance, 0 when unknown
    start_cash = 0

    def __init__(self, **params: Any) -> None:
        if params:
            raise TypeError(f"{type(self).__name__} takes no params, got {sorted(params)}")
        self.kernel: Kernel | None = None

    @property
    def source(self) -> str:
        return f"exec.{self.name}"

    def attach(self, kernel: Kernel) -> None:
        self.kernel = kernel

    # An executor that needs the config (a live one reads its credentials) also defines
    # ``configure(cfg: Config) -> None``: the daemon calls it right after construction and a
    # ConfigError it raises refuses the start, naming the field.

    def detach(self) -> None:
        """Undo :meth:`attach` (the kernel switches executors, e.g. in recovery)."""

    def to_state(self) -> Any:
        """JSON-able state for the kernel's snapshot (a simulated executor's book of resting
        orders and balances); None = stateless."""
        return None

    def restore(self, state: Any) -> None:
        """Receive what :meth:`to_state` returned."""

    @abc.abstractmethod
    def submit(self, order: Order) -> None:
        """Send ``order`` (already journaled and fsynced); must not block."""

    @abc.abstractmethod
    def cancel(self, order: Order) -> None:
        """Cancel ``order`` (the cancel is already journaled); must not block."""

    def act(self, action: PositionAction) -> None:
        """Carry out an on-chain position action (merge, split, redeem, convert), already
        journaled and fsynced; must not block. A live executor queues it for its own task and
        reports ``PositionActionSent`` / ``Done`` / ``Failed`` through the door. This default
        (the null and paper executors) simulates the chain: the action is confirmed at once
        with the collateral the contracts would pay, deterministically, as an engine event."""
        assert self.kernel is not None
        k = self.kernel
        k.emit(PositionActionDone(ts=k.clock.now(), action_id=action.action_id, action=action.action,
                                  market=action.market, strategy=action.strategy, amount=action.amount,
                                  collateral=k.expected_collateral(action), tx_hash="simulated"))  # fmt: skip

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        """The executor's own task (asynchronous executors)."""

    def idle(self) -> bool:
        """True when no request is in flight (used to drain at shutdown)."""
        return True

    def close(self) -> None:
        """Release what the executor holds (streams, sessions)."""


class NullExecutor(Executor):
    """Accepts every order and never fills it; cancels succeed. For dry runs and tests."""

    name = "null"

    def submit(self, order: Order) -> None:
        assert self.kernel is not None
        k = self.kernel
        k.emit(OrderAccepted(ts=k.clock.now(), client_id=order.client_id, strategy=order.strategy,
                             asset_id=order.asset_id, venue_order_id="null-" + order.client_id))  # fmt: skip

    def cancel(self, order: Order) -> None:
        assert self.kernel is not None
        k = self.kernel
        k.emit(OrderCancelled(ts=k.clock.now(), client_id=order.client_id, strategy=order.strategy,
                              asset_id=order.asset_id, reason="cancelled"))  # fmt: skip


class RecordedExecutor(Executor):
    """Sends nothing: in faithful replay and in crash recovery the executor's responses are
    already in the journal and arrive as inputs."""

    name = "recorded"

    def __init__(self, name: str = "recorded") -> None:
        super().__init__()
        self.name = name
        self.submitted: list[str] = []

    def submit(self, order: Order) -> None:
        self.submitted.append(order.client_id)

    def cancel(self, order: Order) -> None:
        pass

    def act(self, action: PositionAction) -> None:
        pass  # its outcome is in the journal too


class LoopbackExecutor(Executor):
    """An in-process stand-in for an exchange, exercising the asynchronous path end to end:
    its task answers every order with an accept and a full fill at the limit price (taker, no
    fee), and every cancel of an unfilled order with a cancel, all through the kernel's door.
    Useful to test write-ahead journaling, faithful replay and crash recovery; not a fill model
    (that is the paper executor's job)."""

    name = "loopback"
    asynchronous = True

    def __init__(self, latency_ms: float = 0.0, fill: bool = True) -> None:
        super().__init__()
        self.latency = latency_ms / 1000.0
        self.fill = fill
        self._send, self._recv = anyio.create_memory_object_stream[tuple[str, Any]](math.inf)
        self._in_flight = 0
        self._filled: set[str] = set()
        self._trade_seq = 0

    def submit(self, order: Order) -> None:
        self._in_flight += 1
        self._send.send_nowait(("submit", order))

    def cancel(self, order: Order) -> None:
        self._in_flight += 1
        self._send.send_nowait(("cancel", order))

    def idle(self) -> bool:
        return self._in_flight == 0

    def close(self) -> None:
        self._send.close()
        self._recv.close()

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        from ..kernel import InboundRecord

        async with send:
            async for op, order in self._recv:
                try:
                    if self.latency:
                        await anyio.sleep(self.latency)
                    common = dict(client_id=order.client_id, strategy=order.strategy,
                                  asset_id=order.asset_id, venue_order_id="lb-" + order.client_id)  # fmt: skip
                    if op == "submit":
                        events: list[Any] = [OrderAccepted(ts=0, **common)]
                        if self.fill:
                            self._trade_seq += 1
                            it = order.intent
                            events.append(OrderFilled(ts=0, trade_id=f"lbt-{self._trade_seq}", side=it.side,
                                                      price=it.price, size=it.size, liquidity="taker",
                                                      market=it.market, leaves=0, **common))  # fmt: skip
                            self._filled.add(order.client_id)
                    elif order.client_id not in self._filled:
                        events = [OrderCancelled(ts=0, reason="cancelled", **common)]
                    else:
                        events = []
                    if events:
                        await send.send(InboundRecord(clock.now(), self.source, ENCODER.encode(events)))
                finally:
                    self._in_flight -= 1
