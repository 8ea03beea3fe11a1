"""Feed adapters: the I/O side. A feed runs as its own task in the daemon, stamps every frame
with the live clock's receive time and sends it through the kernel's one door (a bounded anyio
memory stream: back-pressure, never silent drops).

A feed class takes its instance name and a typed ``Params`` struct (its ``[[feeds]] params``
table) and implements ``async run(send, clock)``; it returns when it has nothing more to send
(a live feed never does). Register it in the entry-point group ``polybot.adapters``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
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


def door_closed(exc: BaseException) -> bool:
    """True if ``exc`` is (or groups only) the kernel's door being closed: time for a feed to
    stop, not an error."""
    if isinstance(exc, (anyio.BrokenResourceError, anyio.ClosedResourceError)):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(door_closed(e) for e in exc.exceptions)
    return False


def describe(exc: BaseException) -> str:
    """``"ExcType: message"`` for logs and health details (a one-exception group unwrapped)."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return describe(exc.exceptions[0])
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def typed_params(cls: type[StrategyParams], feed: str, params: Any) -> Any:
    """A feed's params as its typed ``Params``: None -> the defaults, a mapping (a config table)
    converted and validated (a ``ValueError`` naming the feed and the key), a struct as is."""
    if params is None:
        return cls()
    if isinstance(params, Mapping):
        import msgspec

        from .strategy import convert_params

        try:
            return convert_params(cls, dict(params))
        except msgspec.ValidationError as exc:
            raise ValueError(f"{feed}: params: {exc}") from None
    return params
