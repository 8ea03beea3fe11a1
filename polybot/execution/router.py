"""One executor per venue: the router sends each order to the executor of its market's venue.

Configured with ``[executor.venues.<venue>]`` tables beside ``[executor]`` (which serves the
default venue, ids without a prefix)::

    [executor]                       # the Polymarket CLOB (condition ids 0x..., token ids)
    kind = "clob"
    [executor.venues.pmus]           # markets "pmus:<slug>" (Polymarket US)
    kind = "polymarket-us"
    params = { unknown_orders = "refuse" }

Without venue tables there is no router: the one executor serves every market (a paper
executor fills on any venue's books). The venue of an order is read from its market (else
asset) id (:func:`polybot.venues.venue_of`); an order for a venue with no executor is rejected
(``no executor for venue ...``), never sent to another venue. Each member keeps its own name
and source (``exec.<name>``), its own task and its own snapshot state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectSendStream

from ..events import OrderCancelled, OrderRejected, PositionActionFailed
from ..venues import DEFAULT, venue_of
from .base import Executor, RecordedExecutor

if TYPE_CHECKING:  # pragma: no cover
    from ..clock import Clock
    from ..config import Config
    from ..events import PositionAction
    from ..kernel import InboundRecord, Kernel
    from .orders import Order


class VenueRouter(Executor):
    name = "router"

    def __init__(self, members: dict[str, Executor]) -> None:
        super().__init__()
        if DEFAULT not in members:
            raise ValueError("the router needs the default venue's executor ([executor])")
        names = [ex.name for ex in members.values()]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"two venues' executors share the name {dup[0]!r} (their sources would mix)")
        self.members = dict(members)

    # ---------------------------------------------------------------- composition

    @property
    def asynchronous(self) -> bool:  # type: ignore[override]
        return any(ex.asynchronous for ex in self.members.values())

    @property
    def start_cash(self) -> int:  # type: ignore[override]
        return sum(ex.start_cash for ex in self.members.values())

    def describe(self) -> str:
        return ", ".join(f"{v or 'default'}: {ex.name}" for v, ex in sorted(self.members.items()))

    def for_venue(self, venue: str) -> Executor | None:
        return self.members.get(venue)

    def configure(self, cfg: Config) -> None:
        for ex in self.members.values():
            hook = getattr(ex, "configure", None)
            if hook is not None:
                hook(cfg)

    def attach(self, kernel: Kernel) -> None:
        super().attach(kernel)
        for ex in self.members.values():
            ex.attach(kernel)
            kernel.decoders.setdefault(ex.source, kernel._decode_exec)

    def detach(self) -> None:
        for ex in self.members.values():
            ex.detach()

    def to_state(self) -> Any:
        return {v: {"name": ex.name, "state": ex.to_state()} for v, ex in sorted(self.members.items())}

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        for v, ex in self.members.items():
            s = state.get(v)
            if isinstance(s, dict) and s.get("name") == ex.name:
                ex.restore(s.get("state"))

    # ---------------------------------------------------------------- routing

    def _pick(self, market: str, asset_id: str) -> tuple[str, Executor | None]:
        v = venue_of(market or asset_id)
        return v, self.members.get(v)

    def submit(self, order: Order) -> None:
        v, ex = self._pick(order.intent.market, order.asset_id)
        if ex is not None:
            ex.submit(order)
            return
        k = self.kernel
        assert k is not None
        k.emit(OrderRejected(ts=k.clock.now(), client_id=order.client_id, strategy=order.strategy,
                             asset_id=order.asset_id, reason=f"no executor for venue {v!r} ([executor.venues.{v}])"))  # fmt: skip

    def cancel(self, order: Order) -> None:
        v, ex = self._pick(order.intent.market, order.asset_id)
        if ex is not None:
            ex.cancel(order)
            return
        k = self.kernel
        assert k is not None
        k.emit(OrderCancelled(ts=k.clock.now(), client_id=order.client_id, strategy=order.strategy,
                              asset_id=order.asset_id, reason=f"no executor for venue {v!r}"))  # fmt: skip

    def act(self, action: PositionAction) -> None:
        v, ex = self._pick(action.market, "")
        if ex is not None:
            ex.act(action)
            return
        k = self.kernel
        assert k is not None
        k.emit(PositionActionFailed(ts=k.clock.now(), action_id=action.action_id, action=action.action,
                                    market=action.market, strategy=action.strategy,
                                    reason=f"no executor for venue {v!r}"))  # fmt: skip

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        async with send, anyio.create_task_group() as tg:
            for ex in self.members.values():
                if ex.asynchronous:
                    tg.start_soon(ex.run, send.clone(), clock)

    def idle(self) -> bool:
        return all(ex.idle() for ex in self.members.values())

    def close(self) -> None:
        for ex in self.members.values():
            ex.close()


def offline_twin(ex: Executor, faithful: bool, paper: Callable[[], Executor]) -> Executor:
    """The executor a replay (or crash recovery) runs instead of ``ex``: an asynchronous one's
    answers are inputs in the journal, so faithful replay feeds them back through a
    :class:`RecordedExecutor` of the same name; what-if replay cannot ask it, so ``paper()``
    answers instead. A router gets the same treatment member by member in faithful replay; in
    what-if replay one paper executor serves every venue: the router's default member when it
    is a paper executor (as configured), else ``paper()``. ``ex`` itself is
    returned when it is simulated (it recomputes its answers)."""
    if isinstance(ex, VenueRouter):
        if not ex.asynchronous:
            return ex
        if not faithful:
            # one paper executor serves every venue's books: the configured default one (its
            # cash, latency, fees) when there is one, else a default paper executor
            from .paper import PaperExecutor

            for m in ex.members.values():
                if m.asynchronous:
                    m.close()
            default = ex.members[DEFAULT]
            return default if isinstance(default, PaperExecutor) else paper()
        return VenueRouter({v: offline_twin(m, faithful, paper) for v, m in ex.members.items()})
    if not ex.asynchronous:
        return ex
    ex.close()
    return RecordedExecutor(ex.name) if faithful else paper()


def recorded_twin(ex: Executor) -> Executor:
    """What crash recovery runs while it feeds the journal's tail back: an asynchronous
    executor's answers are in the tail, so a :class:`RecordedExecutor` of the same name stands
    in for it (``ex`` is left open: it takes over afterwards); a router keeps its simulated
    members and stands a recorded one in for each asynchronous member."""
    if isinstance(ex, VenueRouter):
        return VenueRouter({v: recorded_twin(m) for v, m in ex.members.items()})
    return RecordedExecutor(ex.name) if ex.asynchronous else ex
