"""Execution: the order model and its state machine, exchange rules (tick, size, amounts as the
signed order carries them), the fee model, execution modes and the executors (null, loopback,
recorded, paper).

Strategies cannot tell which executor runs: all of them answer through the same order events.
"""

from .base import Executor, LoopbackExecutor, NullExecutor, RecordedExecutor
from .orders import TERMINAL, TRANSITIONS, Order, OrderState, OrderStore

__all__ = [
    "Executor", "LoopbackExecutor", "NullExecutor", "RecordedExecutor",
    "TERMINAL", "TRANSITIONS", "Order", "OrderState", "OrderStore",
]  # fmt: skip
