"""Synchronous in-process message bus.

* ``subscribe(EventType, handler, key=None)``: ``EventType`` may be a concrete event class, a base
  class (all its subclasses) or :class:`~polybot.events.Event` (wildcard: every event). ``key``
  restricts delivery to events whose ``asset_id`` equals it.
* ``publish(event)``: dispatches synchronously to every matching handler in subscription order
  (the kernel's own components subscribe in earlier priority tiers: its state, the execution
  modes, the executor; strategies and everyone else follow in subscription order).
  An event published from inside a handler is queued and dispatched after the current one
  finishes, FIFO: there is no recursion and one global order.
* Routing costs two dict lookups per event: the handler tuple for ``(class)`` or, for classes
  with keyed subscribers, for ``(class, asset_id)``; both are built once and cached.
* A handler that raises is logged (once per handler and event type, then counted) and reported
  as a :class:`~polybot.events.HandlerError` event; the other handlers still run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from loguru import logger

from .events import Event, HandlerError

Handler = Callable[[Any], Any]


#: Dispatch tiers (lower first): the kernel's own state, then the execution modes, then the
#: executor (a paper executor reads the updated book and fills before anyone reacts to the
#: event), then everyone else (strategies, reports) in subscription order.
PRIORITY_KERNEL = -30
PRIORITY_EXECUTIONS = -20
PRIORITY_EXECUTOR = -10


class _Sub:
    __slots__ = ("cls", "handler", "key", "seq", "priority")

    def __init__(self, cls: type, handler: Handler, key: str | None, seq: int, priority: int = 0) -> None:
        self.cls = cls
        self.handler = handler
        self.key = key
        self.seq = seq
        self.priority = priority


def handler_name(h: Handler) -> str:
    owner = getattr(h, "__self__", None)
    name = getattr(h, "__qualname__", None) or repr(h)
    if owner is not None and "." not in name:
        return f"{type(owner).__name__}.{name}"
    return name


_ANY: Any = object()


class Bus:
    def __init__(self) -> None:
        self._subs: list[_Sub] = []
        self._seq = 0
        # class -> tuple of handlers (no keyed subscribers for the class), or dict key -> tuple
        # with the unkeyed tuple under None.
        self._table: dict[type, Any] = {}
        self._queue: deque[Event] = deque()
        self._dispatching = False
        self.published = 0
        self.handler_errors = 0
        self._logged_errors: set[tuple[str, str]] = set()

    # ---------------------------------------------------------------------------- subscriptions

    def subscribe(self, event_type: type[Event], handler: Handler, key: str | None = None, priority: int = 0) -> None:
        """Deliver ``event_type`` (and its subclasses) to ``handler``, only for asset ``key`` if
        given. Handlers run by ``priority`` (lower first; the kernel's tiers are negative), then
        in subscription order."""
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(f"subscribe() needs an Event class, got {event_type!r}")
        if key is not None and "asset_id" not in _fields_of(event_type):
            raise TypeError(f"{event_type.__name__} has no asset_id: it cannot be routed by key")
        self._seq += 1
        self._subs.append(_Sub(event_type, handler, key, self._seq, priority))
        self._invalidate((event_type,))

    def unsubscribe(self, handler: Handler, event_type: type[Event] | None = None, key: Any = _ANY) -> None:
        """Remove ``handler``'s subscriptions (to ``event_type`` only, if given; with ``key``
        only, if given: ``None`` for the unkeyed one)."""
        keep: list[_Sub] = []
        gone: set[type] = set()
        for s in self._subs:
            if s.handler == handler and (event_type is None or s.cls is event_type) and (key is _ANY or s.key == key):
                gone.add(s.cls)
            else:
                keep.append(s)
        if gone:
            self._subs = keep
            self._invalidate(gone)

    def _invalidate(self, types: Any) -> None:
        """Forget the routing of the event classes a subscription to ``types`` touches (the
        others keep theirs: a paper executor subscribing per order rebuilds only its own)."""
        table = self._table
        for cls in [c for c in table if issubclass(c, tuple(types))]:
            del table[cls]

    def _build(self, cls: type) -> Any:
        matching = sorted((s for s in self._subs if issubclass(cls, s.cls)), key=lambda s: (s.priority, s.seq))
        unkeyed = tuple(s.handler for s in matching if s.key is None)
        keys = {s.key for s in matching if s.key is not None}
        if not keys:
            entry: Any = unkeyed
        else:
            entry = {None: unkeyed}
            for k in keys:
                entry[k] = tuple(s.handler for s in matching if s.key is None or s.key == k)
        self._table[cls] = entry
        return entry

    def handlers_for(self, event: Event) -> tuple[Handler, ...]:
        entry = self._table.get(event.__class__)
        if entry is None:
            entry = self._build(event.__class__)
        if entry.__class__ is tuple:
            return entry  # type: ignore[no-any-return]
        return entry.get(event.asset_id) or entry[None]  # type: ignore[attr-defined,no-any-return]

    # ---------------------------------------------------------------------------- dispatch

    def publish(self, event: Event) -> None:
        if self._dispatching:
            self._queue.append(event)
            return
        self._dispatching = True
        table = self._table
        queue = self._queue
        n = 0
        try:
            while True:
                n += 1
                entry = table.get(event.__class__)
                if entry is None:
                    entry = self._build(event.__class__)
                    table = self._table
                if entry.__class__ is not tuple:
                    entry = entry.get(event.asset_id) or entry[None]
                for h in entry:
                    try:
                        h(event)
                    except Exception as exc:  # noqa: BLE001 - isolation is the contract
                        self._on_error(h, event, exc)
                if not queue:
                    break
                event = queue.popleft()
                table = self._table
        finally:
            self.published += n
            self._dispatching = False

    def _on_error(self, handler: Handler, event: Event, exc: Exception) -> None:
        self.handler_errors += 1
        name = handler_name(handler)
        etype = type(event).__name__
        key = (name, etype)
        if key not in self._logged_errors:
            self._logged_errors.add(key)
            logger.opt(exception=exc).error(
                "handler {} raised on {} (further errors of this pair are only counted): {!r}",
                name,
                etype,
                event,
            )
        if isinstance(event, HandlerError):
            return  # never report errors about error reports: no loops
        self._queue.append(
            HandlerError(ts=event.ts, handler=name, event_type=etype, error=f"{type(exc).__name__}: {exc}")
        )


def _fields_of(cls: type) -> tuple[str, ...]:
    return getattr(cls, "__struct_fields__", ())
