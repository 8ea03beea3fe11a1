"""Feed adapters: the I/O side. A feed runs as its own task in the daemon, stamps every frame
with the live clock's receive time and sends it through the kernel's one door (a bounded anyio
memory stream: back-pressure, never silent drops).

A feed class takes its instance name and a typed ``Params`` struct (its ``[[feeds]] params``
table) and implements ``async run(send, clock)``; it returns when it has nothing more to send
(a live feed never does). Register it in the entry-point group ``polybot.adapters``.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

from anyio.abc import ObjectSendStream

from .strategy import NoParams, StrategyParams

if TYPE_CHECKING:  # pragma: no cover
    from .clock import Clock
    from .kernel import InboundRecord

ENTRY_POINT_GROUP = "polybot.adapters"


class Feed(abc.ABC):
    kind: ClassVar[str] = "feed"
    Params: ClassVar[type[StrategyParams]] = NoParams

    def __init__(self, name: str, params: Any) -> None:
        self.name = name
        self.params = params

    def attach(self, kernel: Any) -> None:
        """Called by the daemon before :meth:`run` with the live kernel, for feeds that react to
        engine state (e.g. resync a book the kernel found unhealthy by subscribing to
        ``BookHealth`` on ``kernel.bus``). Such reactions must reach the kernel only as inputs
        sent through ``send``, so replay stays faithful. Default: nothing."""

    @abc.abstractmethod
    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        """Send inbound records until done (or forever); return to end the feed."""
