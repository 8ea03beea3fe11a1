"""The strategy API.

A strategy is a class with a ``name``, a typed ``Params`` struct (filled from its TOML table) and
handlers for the events it wants::

    class BuyBelow(Strategy):
        name = "buy_below"

        class Params(StrategyParams):
            asset_id: str
            max_price: Units           # "0.45" or 0.45 in TOML -> 450_000
            size: Units = Units(10_000_000)

        def on_start(self) -> None:
            self.subscribe(BookDelta, self.on_delta, key=self.params.asset_id)

        def on_delta(self, ev: BookDelta) -> None:
            book = self.ctx.books.get(ev.asset_id)
            ...
            decision = self.ctx.submit(OrderIntent(...))

Handlers can also be declared with the :func:`on` decorator. A strategy never does I/O: it reads
the context (books, catalog, portfolio, its own orders, the clock) and acts through
``ctx.submit()`` / ``ctx.cancel()`` / ``ctx.set_timer()``. Internal state that must survive a
restart is returned by :meth:`Strategy.snapshot` and given back to :meth:`Strategy.restore`.

Strategies are found by name through the entry-point group ``polybot.strategies`` or by a
``package.module:Class`` path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from loguru import logger

from .events import Event, OrderIntent, OrderPlan, PositionAction, TimerFired

if TYPE_CHECKING:  # pragma: no cover
    from .book import Books
    from .catalog import Catalog
    from .kernel import Kernel
    from .execution.orders import Order
    from .portfolio import Portfolio, Position
    from .scoreboard import OddsBoard, Scoreboard
    from .risk import Decision

ENTRY_POINT_GROUP = "polybot.strategies"


class Units(int):
    """A config value in 6-decimal base units: TOML ``"0.45"``, ``0.45`` or ``1`` -> 450_000 /
    1_000_000. Floats are converted through their shortest repr, so 0.45 is exactly 450_000."""


class StrategyParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for strategy params: unknown keys are refused."""


class NoParams(StrategyParams):
    pass


def on(*event_types: type[Event], key_param: str | None = None) -> Callable[[Callable], Callable]:
    """Declare a method as the handler of ``event_types``; ``key_param`` names a param (a str or
    a list of str) whose value(s) restrict delivery to those asset ids."""

    def deco(fn: Callable) -> Callable:
        fn.__polybot_on__ = (event_types, key_param)  # type: ignore[attr-defined]
        return fn

    return deco


class Context:
    """What a strategy sees. Read-only views plus the three ways to act."""

    def __init__(self, kernel: Kernel, strategy: Strategy) -> None:
        self._k = kernel
        self._s = strategy
        self.log = logger.bind(strategy=strategy.id)

    @property
    def books(self) -> Books:
        return self._k.books

    @property
    def catalog(self) -> Catalog:
        return self._k.catalog

    @property
    def portfolio(self) -> Portfolio:
        return self._k.portfolio

    @property
    def scoreboard(self) -> Scoreboard:
        """Latest game state per game and score feed (:mod:`polybot.scoreboard`)."""
        return self._k.scoreboard

    @property
    def odds(self) -> OddsBoard:
        """Latest bookmaker quote per event, book, market and outcome."""
        return self._k.odds

    @property
    def trading_state(self) -> str:
        return self._k.trading_state

    def now(self) -> int:
        """Kernel time in ns (the receive time of the input being processed)."""
        return self._k.clock.now()

    def open_orders(self, asset_id: str | None = None) -> list[Order]:
        return self._k.orders.open_orders(self._s.id, asset_id)

    def order(self, client_id: str) -> Order | None:
        o = self._k.orders.get(client_id)
        return o if o is not None and o.strategy == self._s.id else None

    def position(self, asset_id: str) -> int:
        """Shares this strategy holds of ``asset_id``."""
        return self._k.portfolio.size(asset_id, self._s.id)

    def holding(self, asset_id: str) -> Position | None:
        """This strategy's position in ``asset_id`` (size, cost basis, ``avg_price``, realized
        PnL, fees, rebates), or None if it never traded it. Read only."""
        return self._k.portfolio.by_strategy.get((self._s.id, asset_id))

    def submit(self, intent: OrderIntent | OrderPlan) -> Decision:
        return self._k.submit(self._s.id, intent)

    def cancel(self, client_id: str, reason: str = "") -> bool:
        return self._k.cancel(self._s.id, client_id, reason)

    # on-chain position actions: each returns its action id, or "" when refused (the refusal
    # is a PositionActionFailed event); the portfolio moves when the chain confirms it

    def merge(self, market: str, amount: int, note: str = "") -> str:
        """Merge ``amount`` YES+NO pairs of ``market`` back into ``amount`` collateral."""
        return self._k.act(self._s.id, PositionAction(action="merge", market=market, amount=amount, note=note))

    def split(self, market: str, amount: int, note: str = "") -> str:
        """Split ``amount`` collateral into ``amount`` YES and ``amount`` NO of ``market``."""
        return self._k.act(self._s.id, PositionAction(action="split", market=market, amount=amount, note=note))

    def redeem(self, market: str, note: str = "") -> str:
        """Redeem a resolved market's shares (the whole account's: the contracts redeem the
        wallet's balance). Needs ``[portfolio] settle = "redeem"``."""
        return self._k.act("", PositionAction(action="redeem", market=market, note=note))

    def convert(self, no_asset_ids: list[str] | tuple[str, ...], amount: int, note: str = "") -> str:
        """Neg-risk: ``amount`` NO of each of these questions into ``amount x (k - 1)``
        collateral plus ``amount`` YES of every other question of the event."""
        info = self._k.catalog.for_asset(no_asset_ids[0]) if no_asset_ids else None
        return self._k.act(self._s.id, PositionAction(action="convert", market=info.market if info else "",
                                                      amount=amount, asset_ids=tuple(no_asset_ids), note=note))  # fmt: skip

    def pending_actions(self, market: str | None = None) -> list[PositionAction]:
        """This strategy's on-chain actions on their way (sent, not confirmed or failed)."""
        return self._k.pending_actions(market, self._s.id)

    def execute(self, asset_id: str, side: str, size: int, mode: str = "cross", **kw: Any) -> Decision:
        """Work an order in an execution mode (:mod:`polybot.execution.modes`): ``"cross"``
        (taker FAK at ``limit`` or the touch), ``"post"`` (post-only, ``offset_ticks`` behind the
        touch) or ``"post_then_cross"`` (post, then after ``timeout_s`` take the rest up to
        ``max_price``). Returns the risk decision of the order sent now."""
        return self._k.executions.execute(self._s.id, asset_id, side, size, mode, **kw)  # type: ignore[arg-type]

    def cancel_all(self, asset_id: str | None = None) -> int:
        n = 0
        for o in self.open_orders(asset_id):
            n += self.cancel(o.client_id, "cancel_all")
        return n

    def set_timer(self, name: str, delay_ns: int | None = None, at_ns: int | None = None) -> None:
        """Fire ``on_timer`` with a :class:`TimerFired` named ``name`` after ``delay_ns`` (or at
        ``at_ns``). Re-arming the same name replaces the previous deadline."""
        if (delay_ns is None) == (at_ns is None):
            raise ValueError("give exactly one of delay_ns or at_ns")
        deadline = at_ns if at_ns is not None else self.now() + int(delay_ns or 0)
        self._k.timers.set(self._s.id, name, deadline)

    def cancel_timer(self, name: str) -> bool:
        return self._k.timers.cancel(self._s.id, name)

    def subscribe(self, event_type: type[Event], handler: Callable[[Any], Any], key: str | None = None) -> None:
        self._s._subs.append((event_type, handler, key))
        if self._s.enabled:
            self._k.bus.subscribe(event_type, handler, key)


class Strategy:
    """Base class. Override ``on_start`` (subscribe there), handlers, and optionally
    ``on_timer``, ``on_params``, ``snapshot``/``restore``."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = NoParams

    def __init__(self, ctx_factory: Callable[[Strategy], Context], params: StrategyParams, id: str) -> None:
        self.id = id  # the instance name in config (several instances of one class may run)
        self.params = params
        self.enabled = True
        self._subs: list[tuple[type[Event], Callable[[Any], Any], str | None]] = []
        self.ctx = ctx_factory(self)

    # ------------------------------------------------------------------ lifecycle hooks

    def on_start(self) -> None:
        """Subscribe to events here (or use the @on decorator)."""

    def on_stop(self) -> None:
        """Called on shutdown."""

    def on_timer(self, ev: TimerFired) -> None:
        """A timer set with ``ctx.set_timer`` fired."""

    def on_params(self, old: StrategyParams, new: StrategyParams) -> None:
        """Params changed at run time (already validated)."""

    def snapshot(self) -> Any:
        """JSON-able internal state to survive a restart (None = stateless)."""
        return None

    def restore(self, state: Any) -> None:
        """Receive what :meth:`snapshot` returned."""

    # ------------------------------------------------------------------ kernel side

    def _declared(self) -> list[tuple[type[Event], Callable[[Any], Any], str | None]]:
        out = []
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            spec = getattr(fn, "__polybot_on__", None)
            if spec is None:
                continue
            types, key_param = spec
            keys: list[str | None] = [None]
            if key_param is not None:
                v = getattr(self.params, key_param)
                keys = [v] if isinstance(v, str) else list(v)
            bound = getattr(self, attr)
            for t in types:
                for k in keys:
                    out.append((t, bound, k))
        return out


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Units:
        from .units import to_units

        if isinstance(obj, bool):
            raise ValueError("expected a number")
        if isinstance(obj, int):
            return Units(obj * 1_000_000)
        if isinstance(obj, float):
            return Units(to_units(repr(obj)))
        if isinstance(obj, str):
            return Units(to_units(obj))
        raise ValueError(f"expected a decimal number, got {type(obj).__name__}")
    raise TypeError(f"unsupported param type {typ!r}")


def params_table(params: StrategyParams) -> dict[str, Any]:
    """The params as a TOML-like table that :func:`convert_params` turns back into equal params
    (a ``Units`` value as its decimal string: an int in a table means whole units)."""
    from .units import from_units

    def plain(v: Any) -> Any:
        if isinstance(v, Units):
            return from_units(int(v))
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in msgspec.structs.asdict(params).items()}


def convert_params(cls: type[StrategyParams], table: dict[str, Any]) -> StrategyParams:
    """Typed params from a TOML table (raises msgspec.ValidationError naming the key)."""
    return msgspec.convert(table, cls, dec_hook=_dec_hook, strict=False)


def import_path(path: str) -> Any:
    """Import ``package.module:Attr``."""
    mod, _, attr = path.partition(":")
    if not mod or not attr:
        raise ValueError(f"expected 'package.module:Class', got {path!r}")
    obj: Any = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def installed_strategies() -> dict[str, str]:
    """name -> 'module:Class' for every strategy registered in the entry-point group."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_strategy_class(ref: str) -> type[Strategy]:
    if ":" in ref:
        cls = import_path(ref)
    else:
        eps = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == ref]
        if not eps:
            known = ", ".join(sorted(installed_strategies())) or "none"
            raise LookupError(f"no strategy named {ref!r} (installed: {known})")
        cls = eps[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"{ref!r} is not a polybot Strategy subclass")
    return cls
