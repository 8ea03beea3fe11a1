"""The kernel: synchronous, single-threaded and deterministic.

Everything that can change a decision enters through one door, :meth:`Kernel.process`, as an
inbound record ``(receive ts, source, msg)``: market and user frames, REST responses, executor
responses, clock ticks and control commands. For each record the kernel

1. advances its clock to the record's time (clamped if it went backwards),
2. decodes the message with the source's decoder (a pure function: bytes -> events),
3. journals the record exactly as received (invalid JSON as a JSON string),
4. publishes the events on the bus, where its own state handlers run first, then strategies.

Strategies act through :meth:`submit` (risk chain, synchronously, then write-ahead journal +
fsync, then the executor) and :meth:`cancel`. The kernel never reads the wall clock, never draws
a random number and does no I/O other than appending to its journal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs
import msgspec
from loguru import logger

from .book import Books
from .bookhash import BookHasher
from .bus import PRIORITY_KERNEL, Bus
from .catalog import Catalog
from .clock import ReplayClock, Timers
from .venues import venue_of
from .events import (
    DECODER,
    ENCODER,
    JOURNALED_TYPES,
    LIST_DECODER,
    BookDelta,
    BookHealth,
    BookSnapshot,
    CancelAll,
    CancelRequest,
    ChainAction,
    CancelSubmitted,
    ControlEvent,
    EnableStrategy,
    Event,
    GameState,
    OddsQuote,
    FeedDisconnected,
    FillEvent,
    FillReversed,
    FillSettlement,
    Flatten,
    Halt,
    InputDropped,
    MarketInfo,
    MarketResolved,
    MarketStatus,
    OrderAdopted,
    OrderEvent,
    OrderFilled,
    OrderPartiallyFilled,
    OrderIntent,
    OrderPlan,
    OrderSigned,
    OrderStateError,
    OrderSubmitted,
    PositionAction,
    PositionActionDone,
    PositionActionEvent,
    PositionActionFailed,
    PositionActionSent,
    PositionChanged,
    PositionCorrected,
    ExecutorNotice,
    Reduce,
    Resume,
    RiskApproved,
    RiskRejected,
    RiskResized,
    SetParams,
    TickSizeChange,
    TimerFired,
    TradePrint,
    TradingStateChanged,
    enc_hook,
    type_name,
)
from .execution import Executor, NullExecutor
from .integrity import HashDefaults, Integrity
from .journal import JournalWriter, one_line, text_frame
from .execution.modes import Executions
from .execution.orders import EVENT_STATE, OrderStore
from .portfolio import Portfolio
from .scoreboard import OddsBoard, Scoreboard
from .risk import LOT, Decision, Exposure, RiskChain, RiskContext, TradingStateValidator, reject, worst_case
from .risk.chain import LossBook, intent_loss
from .strategy import Context, Strategy, convert_params, params_table
from .units import SCALE, from_units

if TYPE_CHECKING:  # pragma: no cover
    from .metrics import StageTiming
    from .rolling import Rollover

STATE_VERSION = 1
RECONCILE = "reconcile"  # the owner of position corrections from the venue
REDEEM_RETRY = "kernel:redeem"  # the owner of the timers that ask again for a failed redeem
REDEEM_RETRY_NS = 600 * 1_000_000_000


class InboundRecord(NamedTuple):
    """One input: receive time (ns), source name, and the message: raw bytes as received (a
    frame) or an object the kernel encodes to JSON (control commands, adapter notices)."""

    ts: int
    source: str
    msg: Any


#: A decoder turns one message (JSON bytes as journaled) into events. It must be pure: no state,
#: so that decoding is the same live and in replay. It raises ``msgspec.DecodeError`` (bad JSON
#: or schema) or ``ValueError`` (a bad value) to have the input counted and dropped.
Decoder = Callable[[bytes, int], Sequence[Event]]


class FrameError(ValueError):
    """A decoder's refusal of (part of) a message, with what the kernel needs to act on it.

    ``reason`` names the kind of drop (counted per source and reason); ``asset_ids`` are the
    assets whose books missed an update because of it (they become unhealthy until a
    snapshot); ``events`` are the good events of a partly bad message (published anyway).
    """

    def __init__(self, detail: str, reason: str = "bad_value", asset_ids: Sequence[str] = (),
                 events: Sequence[Event] = ()) -> None:  # fmt: skip
        super().__init__(detail)
        self.reason = reason
        self.asset_ids = tuple(asset_ids)
        self.events = tuple(events)


def _restamp(events: Sequence[Event], ts: int) -> list[Event]:
    return [e if e.ts == ts else msgspec.structs.replace(e, ts=ts) for e in events]


def decode_events(msg: bytes, ts: int) -> Sequence[Event]:
    """The ``events`` source: ready-made polybot events (one, or a JSON array of them)."""
    if msg[:1] == b"[":
        return _restamp(LIST_DECODER.decode(msg), ts)
    return _restamp((DECODER.decode(msg),), ts)


def _typed_decoder(allowed: tuple[type[Event], ...], what: str) -> Decoder:
    def dec(msg: bytes, ts: int) -> Sequence[Event]:
        evs = decode_events(msg, ts)
        for e in evs:
            if not isinstance(e, allowed):
                raise ValueError(f"{what} source cannot carry {type(e).__name__}")
        return evs

    return dec


decode_control = _typed_decoder((ControlEvent,), "control")
decode_exec = _typed_decoder((OrderEvent, PositionCorrected, ExecutorNotice, PositionActionEvent), "executor")


def decode_clock(msg: bytes, ts: int) -> Sequence[Event]:
    return ()


def _SPORTS_SOURCE(source: str) -> bool:  # noqa: N802 - a predicate constant
    return source.startswith(("sports.", "odds."))


BUILTIN_DECODERS: dict[str, Decoder] = {
    "events": decode_events,
    "control": decode_control,
    "clock": decode_clock,
}


class KernelStats:
    __slots__ = ("inputs", "events", "dropped", "by_source", "drop_reasons", "intents", "orders",
                 "fills", "rejections", "illegal_transitions", "duplicate_fills", "sports_repeats")  # fmt: skip

    def __init__(self) -> None:
        self.inputs = 0
        self.events = 0
        self.dropped = 0
        self.by_source: Counter[str] = Counter()
        self.drop_reasons: Counter[str] = Counter()
        self.intents = 0
        self.orders = 0
        self.fills = 0
        self.rejections = 0
        self.illegal_transitions = 0
        self.duplicate_fills = 0  # fills an executor reported twice (same trade, same order): not counted again
        self.sports_repeats = 0  # game states / odds quotes that repeated what the boards hold: not published


_POS_FIELDS = ("size", "cost", "realized", "fees", "bought", "sold", "rebates")
MAX_FILL_RECORDS = 10_000  # the newest fills (repeats and FAILED trades come within minutes)


@attrs.define
class FillRecord:
    """One applied fill and what it did (account and strategy position deltas, cash), so that a
    repeat is recognised and a FAILED trade is undone exactly."""

    client_id: str
    trade_id: str
    strategy: str
    asset_id: str
    side: str
    price: int
    size: int
    fee: int
    account: list[int]
    own: list[int]
    cash: int
    status: str = ""
    reversed: bool = False


def _fields(p: Any) -> list[int]:
    return [getattr(p, f) for f in _POS_FIELDS] if p is not None else [0] * len(_POS_FIELDS)


def _undo(p: Any, delta: list[int]) -> None:
    for f, d in zip(_POS_FIELDS, delta):
        setattr(p, f, getattr(p, f) - d)


class Kernel:
    def __init__(
        self,
        *,
        executor: Executor | None = None,
        risk: RiskChain | None = None,
        journal: JournalWriter | None = None,
        synthesize_timers: bool = False,
        client_id_prefix: str = "pb",
        verify_books: bool = True,
        hash_defaults: HashDefaults | None = None,
        mark: str = "bid",
        flatten_max_slippage: int = 20_000,
        settle: str = "resolution",
        auto_redeem: bool = True,
    ) -> None:
        self.bus = Bus()
        self.clock = ReplayClock()
        self.timers = Timers()
        self.books = Books()
        self.integrity = Integrity(verify_books, hash_defaults)
        self.catalog = Catalog()
        self.scoreboard = Scoreboard()  # latest game states (score feeds)
        self.odds = OddsBoard()  # latest bookmaker quotes (odds feeds)
        self.portfolio = Portfolio(catalog=self.catalog, mark=mark)
        self.orders = OrderStore()
        self.exposure = Exposure()
        # cancels emitted whose CancelSubmitted is not yet dispatched (a second cancel of the
        # same order in one handler must not send a second request)
        self._cancel_sent: set[str] = set()
        # every fill applied, by "client id/trade id": what it did to the positions, so a second
        # report of it is not counted again and a FAILED trade is undone exactly
        self.fills: dict[str, FillRecord] = {}
        self.losses = LossBook(self)  # worst-case loss per market, kept current for the caps
        self.exposure.on_change = self.losses.exposure_changed
        self.trading_state = "active"
        self.risk = risk or RiskChain([TradingStateValidator()])
        self.journal = journal
        self.synthesize_timers = synthesize_timers
        self.client_id_prefix = client_id_prefix
        self.flatten_max_slippage = flatten_max_slippage
        if settle not in ("resolution", "redeem"):
            raise ValueError(f"settle must be 'resolution' or 'redeem', not {settle!r}")
        # "resolution": a resolved market's shares are paid out at once (paper, replays);
        # "redeem": they stay, marked at their payout, until a confirmed redeem pays them
        self.settle_on = settle
        self.auto_redeem = auto_redeem
        self.actions: dict[str, PositionAction] = {}  # on-chain actions sent, not yet confirmed
        self.rolling: Rollover | None = None  # one strategy instance per window of a series
        self._act_seq = 0
        self.book_changes = 0  # counts book snapshots and changes (cheap "did prices move" stamp)
        self.stats = KernelStats()
        self.strategies: dict[str, Strategy] = {}
        # strategy instance -> the venues it may trade on (its config's ``venues``); absent = any
        self.venues: dict[str, frozenset[str]] = {}
        self.decoders: dict[str, Decoder] = dict(BUILTIN_DECODERS)
        self.decoders["events"] = self._decode_events
        self.redactions: dict[str, list[tuple[bytes, bytes]]] = {}
        self.engine_sink: list[bytes] | None = None  # set by faithful replay to compare lines
        # per-stage latency (polybot.metrics.StageTiming), set by the daemon when metrics are on;
        # None (replays, bench): process() pays one attribute check per input and nothing else
        self.timing: StageTiming | None = None
        self.on_state_change: list[Callable[[], None]] = []
        self._seq = 0
        self._plan_seq = 0
        self._logged_drops: set[tuple[str, str]] = set()
        self._decoder_resolver: Callable[[str], Decoder | None] | None = None
        self.executor: Executor = NullExecutor()
        # the kernel's own state handlers run first (books, orders, portfolio), then the
        # executor's (a paper executor reads the updated book), then strategies
        self._install_state_handlers()
        self.executions = Executions(self)
        self.set_executor(executor or NullExecutor())
        self.portfolio.starting_cash = self.executor.start_cash
        self.risk.attach(self)

    # ============================================================================ wiring

    def set_executor(self, executor: Executor) -> None:
        old = self.executor
        if old is not executor:
            old.detach()
        self.executor = executor
        executor.attach(self)
        self.decoders.setdefault(executor.source, self._decode_exec)

    def add_decoder(self, source: str, decoder: Decoder) -> None:
        self.decoders[source] = self._boarded(decoder) if _SPORTS_SOURCE(source) else decoder

    def set_decoder_resolver(self, resolver: Callable[[str], Decoder | None]) -> None:
        """Called for a source with no decoder (e.g. entry-point lookup in replay)."""
        self._decoder_resolver = resolver

    def add_redaction(self, source: str, secret: str, alias: str) -> None:
        """Replace ``secret`` by ``alias`` in every message from ``source`` before it is
        journaled or decoded (the user channel's ``owner`` is the API key)."""
        if secret:
            self.redactions.setdefault(source, []).append((secret.encode(), alias.encode()))

    def add_strategy(self, cls: type[Strategy], instance: str, params: dict[str, Any] | Any, enabled: bool = True) -> Strategy:
        if instance in self.strategies:
            raise ValueError(f"duplicate strategy instance {instance!r}")
        p = params if isinstance(params, cls.Params) else convert_params(cls.Params, dict(params))
        s = cls(lambda st: Context(self, st), p, instance)
        s.enabled = enabled
        self.strategies[instance] = s
        return s

    def remove_strategy(self, instance: str, reason: str = "stopped") -> None:
        """Stop and remove a running instance (a rolling window that is over): its open orders
        are cancelled, its handlers and timers go, ``on_stop`` runs. Its positions stay in the
        portfolio under its name (a redeem settles them)."""
        s = self.strategies.get(instance)
        if s is None:
            return
        self.executions.forget(instance)  # no post_then_cross may cross for it afterwards
        self.cancel_all(instance, reason)
        for t, h, _k in s._subs:
            self.bus.unsubscribe(h, t)
        s._subs.clear()
        s.enabled = False
        self.timers.cancel_owner(instance)
        try:
            s.on_stop()
        except Exception:  # noqa: BLE001
            logger.exception("strategy {} on_stop raised", instance)
        del self.strategies[instance]

    def start(self) -> None:
        """Subscribe strategies (declared handlers, then ``on_start``)."""
        for s in self.strategies.values():
            for t, h, k in s._declared():
                s.ctx.subscribe(t, h, k)
            s.on_start()

    def stop(self) -> None:
        for s in self.strategies.values():
            try:
                s.on_stop()
            except Exception:  # noqa: BLE001
                logger.exception("strategy {} on_stop raised", s.id)

    # ============================================================================ the door

    def process(self, ts: int, source: str, msg: Any, journal: bool = True) -> None:
        """Take one input. ``msg`` is JSON bytes (a frame as received, or as journaled) or an
        object (encoded here). Never raises for bad input: it is counted and dropped."""
        timing = self.timing
        if timing is not None:  # metrics on: the same steps, timed (_process_timed)
            self._process_timed(timing, ts, source, msg, journal)
            return
        stats = self.stats
        stats.inputs += 1
        if self.synthesize_timers and source != "clock":
            # what-if replay: a timer due before this input fires first, through a clock tick
            # that is journaled like a live one (so the output journal replays faithfully)
            d = self.timers.next_deadline()
            while d is not None and d <= ts:
                self.process(max(d, self.clock.now()), "clock", b"{}", journal)
                d = self.timers.next_deadline()
        clock = self.clock
        if ts < clock._now:
            ts = clock.advance(ts)  # clamped (counted)
        else:
            clock._now = ts
        if msg.__class__ is not bytes:
            # a text frame is its UTF-8 bytes; any other object is encoded to JSON
            msg = msg.encode("utf-8", "replace") if isinstance(msg, str) else ENCODER.encode(msg)
        if b"\n" in msg or b"\r" in msg:
            msg = one_line(msg)  # one input, one journal line; decoded in the same form
        red = self.redactions.get(source) if self.redactions else None
        if red:
            for secret, alias in red:
                msg = msg.replace(secret, alias)
        decoder = self.decoders.get(source) or self._resolve(source)
        failure = None
        if decoder is not None:
            try:
                events = decoder(msg, ts)
            except Exception as exc:  # noqa: BLE001 - sorted out off the hot path
                events, msg, failure = self._decode_failed(exc, decoder, msg, ts, source)
        else:
            events, msg, failure = self._unknown_source(msg, source)
        if journal:
            j = self.journal
            if j is not None:
                j.write_input(ts, source, msg)
        stats.by_source[source] += 1
        if failure is not None:
            reason, detail, bad_assets = failure
            self._drop(ts, source, reason, detail, msg)
            for aid in bad_assets:
                b = self.books.get(aid)
                if b is not None:
                    self._unhealthy(b, f"parse failure ({reason})")
        publish = self.bus.publish
        for ev in events:
            publish(ev)
        stats.events += len(events)
        if source == "clock":
            self._fire_due(ts)

    def _process_timed(self, timing: StageTiming, ts: int, source: str, msg: Any, journal: bool) -> None:
        """:meth:`process` with its stages timed (decode, journal, dispatch): the same steps in
        the same order, with clock reads between them. Keep the two in step (the metrics tests
        check that both give the same journal and state). The readings go to ``timing`` only:
        nothing here reaches an event, a decision or the journal."""
        stats = self.stats
        stats.inputs += 1
        if self.synthesize_timers and source != "clock":
            d = self.timers.next_deadline()
            while d is not None and d <= ts:
                self.process(max(d, self.clock.now()), "clock", b"{}", journal)  # timed on its own
                d = self.timers.next_deadline()
        clock = self.clock
        if ts < clock._now:
            ts = clock.advance(ts)
        else:
            clock._now = ts
        if msg.__class__ is not bytes:
            msg = msg.encode("utf-8", "replace") if isinstance(msg, str) else ENCODER.encode(msg)
        if b"\n" in msg or b"\r" in msg:
            msg = one_line(msg)
        red = self.redactions.get(source) if self.redactions else None
        if red:
            for secret, alias in red:
                msg = msg.replace(secret, alias)
        t0 = perf_counter_ns()
        decoder = self.decoders.get(source) or self._resolve(source)
        failure = None
        if decoder is not None:
            try:
                events = decoder(msg, ts)
            except Exception as exc:  # noqa: BLE001
                events, msg, failure = self._decode_failed(exc, decoder, msg, ts, source)
        else:
            events, msg, failure = self._unknown_source(msg, source)
        t1 = t2 = perf_counter_ns()
        t_journal = -1  # not journaled
        if journal:
            j = self.journal
            if j is not None:
                j.write_input(ts, source, msg)
                t2 = perf_counter_ns()
                t_journal = t2 - t1
        timing.inner = 0  # risk/submit time inside this dispatch (nothing carried over)
        try:
            stats.by_source[source] += 1
            if failure is not None:
                reason, detail, bad_assets = failure
                self._drop(ts, source, reason, detail, msg)
                for aid in bad_assets:
                    b = self.books.get(aid)
                    if b is not None:
                        self._unhealthy(b, f"parse failure ({reason})")
            publish = self.bus.publish
            for ev in events:
                publish(ev)
            stats.events += len(events)
            if source == "clock":
                self._fire_due(ts)
        finally:
            timing.record_input(t1 - t0, t_journal, perf_counter_ns() - t2)

    def _decode_failed(self, exc: Exception, decoder: Decoder, msg: bytes, ts: int,
                       source: str) -> tuple[Sequence[Event], bytes, tuple[str, str, tuple[str, ...]]]:  # fmt: skip
        """What a decoder's exception means: (good events, the message as journaled, (reason,
        detail, assets whose books missed an update))."""
        if isinstance(exc, FrameError):
            return exc.events, msg, (exc.reason, str(exc), exc.asset_ids)
        if isinstance(exc, msgspec.ValidationError):
            return (), msg, ("schema", str(exc), ())
        if isinstance(exc, msgspec.DecodeError):
            # not JSON at all: keep it as a JSON string, and let the decoder see that form
            msg = text_frame(msg)
            try:
                return decoder(msg, ts), msg, None  # type: ignore[return-value]
            except FrameError as exc2:
                return exc2.events, msg, (exc2.reason, str(exc2), exc2.asset_ids)
            except (msgspec.DecodeError, ValueError) as exc2:
                return (), msg, ("malformed", str(exc2), ())
        if isinstance(exc, (ValueError, KeyError, TypeError, IndexError)):
            return (), msg, ("bad_value", f"{type(exc).__name__}: {exc}", ())
        # a decoder bug must not stop the engine
        if ("decoder_error", source) not in self._logged_drops:
            logger.opt(exception=exc).error("decoder of {} raised", source)
        return (), msg, ("decoder_error", f"{type(exc).__name__}: {exc}", ())

    @staticmethod
    def _unknown_source(msg: bytes, source: str) -> tuple[Sequence[Event], bytes, tuple[str, str, tuple[str, ...]]]:
        try:
            msgspec.json.decode(msg)
        except msgspec.DecodeError:
            msg = text_frame(msg)
        return (), msg, ("unknown_source", source, ())

    def _resolve(self, source: str) -> Decoder | None:
        dec = None
        if source.startswith("exec."):
            dec = self._decode_exec
        elif self._decoder_resolver is not None:
            dec = self._decoder_resolver(source)
            if dec is not None and _SPORTS_SOURCE(source):
                dec = self._boarded(dec)
        if dec is not None:
            self.decoders[source] = dec
        return dec

    def _drop(self, ts: int, source: str, reason: str, detail: str, msg: bytes) -> None:
        self.stats.dropped += 1
        self.stats.drop_reasons[f"{source}:{reason}"] += 1
        key = (source, reason)
        if key not in self._logged_drops:
            self._logged_drops.add(key)
            logger.warning("dropped input from {} ({}): {} | msg={!r:.200} (further drops of this kind are counted)",
                           source, reason, detail, msg)  # fmt: skip
        self.bus.publish(InputDropped(ts=ts, source=source, reason=reason, detail=detail[:300]))

    def drop_input(self, source: str, reason: str, detail: str = "") -> None:
        """For decoders/handlers that find an input bad after decoding (counted, reported)."""
        self._drop(self.clock.now(), source, reason, detail, b"")

    # ============================================================================ timers

    def _fire_due(self, now: int) -> None:
        for deadline, owner, name in self.timers.pop_due(now):
            self.emit(TimerFired(ts=now, owner=owner, name=name, deadline=deadline))

    def next_deadline(self) -> int | None:
        return self.timers.next_deadline()

    # ============================================================================ emitting

    def emit(self, event: Event) -> None:
        """Publish a kernel-made event (journaled first if it is a journaled type)."""
        if event.__class__ in JOURNALED_TYPES:
            j = self.journal
            if j is not None:
                j.write_event(event)
            if self.engine_sink is not None:
                self.engine_sink.append(ENCODER.encode(event))
        self.bus.publish(event)

    # ============================================================================ submit / cancel

    def _next_client_id(self) -> str:
        self._seq += 1
        return f"{self.client_id_prefix}-{self._seq}"

    def submit(self, strategy: str, intent: OrderIntent | OrderPlan) -> Decision:
        """Run the risk chain synchronously; on approval reserve exposure, journal + fsync the
        orders (write-ahead) and hand them to the executor. Returns the decision."""
        now = self.clock.now()
        if isinstance(intent, OrderPlan):
            self._plan_seq += 1
            plan_id = intent.plan_id or f"plan-{self._plan_seq}"
            legs = [msgspec.structs.replace(leg, ts=now, strategy=strategy, plan_id=plan_id,
                                            client_id=self._next_client_id()) for leg in intent.legs]  # fmt: skip
            plan = msgspec.structs.replace(intent, ts=now, strategy=strategy, plan_id=plan_id, legs=tuple(legs))
            self.stats.intents += len(legs)
            self.emit(plan)
            bad = next((r for r in map(_sanity, legs) if r), "") if legs else "empty plan"
            if not bad and self.venues:
                bad = self._off_venue(strategy, legs)
            if not bad:
                bad = self._netting_conflict(strategy, legs)
            if bad:
                decision, final = reject("kernel", bad), legs
            else:
                if self.timing is None:
                    decision, final = self.risk.check_plan(legs, RiskContext(self, strategy))
                else:  # metrics on: the same call, timed as the "risk" stage
                    decision, final = self.timing.section(self.timing.risk, self.risk.check_plan, legs,
                                                          RiskContext(self, strategy))  # fmt: skip
                if decision.action == "resize" and not intent.resizable:
                    # rejected, with the size the chain would allow (a strategy may re-plan at it)
                    decision = Decision("reject", decision.validator, f"{decision.reason}; the plan is not resizable",
                                        decision.size)  # fmt: skip
            return self._decided(strategy, decision, final, legs, plan_id)
        intent = msgspec.structs.replace(intent, ts=now, strategy=strategy, client_id=self._next_client_id())
        self.stats.intents += 1
        self.emit(intent)
        bad = _sanity(intent) or (self._off_venue(strategy, (intent,)) if self.venues else "") or \
            (self._netting_conflict(strategy, (intent,)) if intent.side == "BUY" else "")
        if bad:
            decision, out = reject("kernel", bad), intent
        elif self.timing is None:
            decision, out = self.risk.check_intent(intent, RiskContext(self, strategy))
        else:  # metrics on: the same call, timed as the "risk" stage
            decision, out = self.timing.section(self.timing.risk, self.risk.check_intent, intent,
                                                RiskContext(self, strategy))  # fmt: skip
        return self._decided(strategy, decision, [out], [intent], intent.plan_id)

    def _off_venue(self, strategy: str, legs: Sequence[OrderIntent]) -> str:
        """A strategy limited to some venues (its config's ``venues``; a rolling instance
        ``<name>/<slug>`` follows ``<name>``) may not trade elsewhere: the refusal, else ``""``."""
        allowed = self.venues.get(strategy)
        if allowed is None and "/" in strategy:
            allowed = self.venues.get(strategy.split("/", 1)[0])
        if allowed is None:
            return ""
        for leg in legs:
            v = venue_of(leg.asset_id)
            if v not in allowed:
                return f"venue {v or 'default'!r} is not in the strategy's venues ({', '.join(sorted(x or 'default' for x in allowed))})"
        return ""

    def _netting_conflict(self, strategy: str, legs: Sequence[OrderIntent]) -> str:
        """On a venue with one net position per market, a buy of one outcome while ANOTHER
        strategy holds the other would close that strategy's position at the venue behind its
        back (the account's YES and NO net out): refused, naming the holder. ``""`` if fine."""
        pf = self.portfolio
        for leg in legs:
            if leg.side != "BUY":
                continue
            info = self.catalog.for_asset(leg.asset_id)
            if info is None or not info.netting:
                continue
            other = self.catalog.complement(leg.asset_id)
            if other and pf.size(other) > pf.size(other, strategy):
                holders = [s for s in pf.strategies() if s != strategy and pf.size(other, s) > 0]
                return (f"netting venue: {', '.join(holders) or 'another strategy'} holds the other outcome of "
                        f"{info.market}; buying this one would close it at the venue")  # fmt: skip
        return ""

    def _decided(self, strategy: str, decision: Decision, final: list[OrderIntent],
                 original: list[OrderIntent], plan_id: str) -> Decision:  # fmt: skip
        now = self.clock.now()
        ids = tuple(i.client_id for i in original)
        if decision.action == "reject":
            self.stats.rejections += 1
            self.emit(RiskRejected(ts=now, strategy=strategy, client_ids=ids, plan_id=plan_id,
                                   validator=decision.validator, reason=decision.reason))  # fmt: skip
            return _with_ids(decision, ids)
        reserved = 0
        for it in final:
            reserved += self._reserve(it, strategy, it.size)
        if decision.action == "resize":
            self.emit(RiskResized(ts=now, strategy=strategy, client_ids=ids, plan_id=plan_id,
                                  validator=decision.validator, reason=decision.reason,
                                  old_size=original[0].size, new_size=final[0].size, reserved=reserved))  # fmt: skip
        else:
            self.emit(RiskApproved(ts=now, strategy=strategy, client_ids=ids, plan_id=plan_id, reserved=reserved))
        orders = []
        for it in final:
            o = self.orders.create(it, now)
            self.stats.orders += 1
            self.emit(OrderSubmitted(ts=now, client_id=it.client_id, strategy=strategy, asset_id=it.asset_id, intent=it))
            orders.append(o)
        if self.timing is None:
            self._hand_over(orders)
        else:  # metrics on: the same call, timed as the "submit" stage
            self.timing.section(self.timing.submit, self._hand_over, orders)
        return _with_ids(decision, ids)

    def _hand_over(self, orders: list[Any]) -> None:
        if self.journal is not None:
            self.journal.sync()  # write-ahead: on disk before anything leaves the process
        for o in orders:
            self.executor.submit(o)

    def _reserve(self, it: OrderIntent, strategy: str, size: int) -> int:
        """Reserve an order's worst case for ``size`` shares: its cash at risk (a BUY's notional
        plus the taker fee at its limit; an uncovered SELL's (1 - p) per share) and its share of
        the market's worst-case loss. Returns the cash at risk."""
        info = self.catalog.for_asset(it.asset_id)
        loss = intent_loss(it.side, it.price, size, info.fees if info is not None else None)
        amt = loss if it.side == "BUY" else worst_case(it, self.portfolio.size(it.asset_id, strategy), size)
        self.exposure.reserve(it.client_id, strategy, it.asset_id, amt, it.side, loss)
        return amt

    def cancel(self, strategy: str | None, client_id: str, reason: str = "") -> bool:
        o = self.orders.get(client_id)
        if o is None or not o.is_open or o.state == "cancel_pending" or client_id in self._cancel_sent:
            return False  # (a cancel already on its way: its CancelSubmitted is still queued)
        if strategy is not None and o.strategy != strategy:
            return False
        now = self.clock.now()
        self._cancel_sent.add(client_id)
        try:
            self.emit(CancelSubmitted(ts=now, client_id=client_id, strategy=o.strategy, asset_id=o.asset_id, reason=reason))
        except BaseException:
            # not sent (the journal refused it): a later cancel of this order must still go out
            self._cancel_sent.discard(client_id)
            raise
        if self.journal is not None:
            self.journal.sync()
        self.executor.cancel(o)
        return True

    def cancel_all(self, strategy: str = "", reason: str = "cancel_all") -> int:
        n = 0
        for o in list(self.orders.open_orders(strategy or None)):
            n += self.cancel(None, o.client_id, reason)
        return n

    # ============================================================================ on-chain actions

    def act(self, strategy: str, action: PositionAction) -> str:
        """Ask for an on-chain position action (merge, split, redeem, convert). It is checked
        against the portfolio and the catalog; a refusal is a journaled
        ``PositionActionFailed`` and returns "". Otherwise the action gets its id, is journaled
        and fsynced, and goes to the executor; the portfolio moves when the executor reports it
        ``PositionActionDone``. Returns the action id."""
        now = self.clock.now()
        self._act_seq += 1
        info = self.catalog.market(action.market)
        fill = {"ts": now, "strategy": strategy, "action_id": f"{self.client_id_prefix}-a{self._act_seq}"}
        if info is not None:
            fill.update(neg_risk=info.neg_risk, version=info.version)
        a = msgspec.structs.replace(action, **fill)
        why = self._action_refusal(a, info)
        if why:
            logger.warning("on-chain {} of {} for {!r} refused: {}", a.action, a.market, strategy, why)
            self.emit(PositionActionFailed(ts=now, action_id=a.action_id, action=a.action, market=a.market,
                                           strategy=strategy, reason=why))  # fmt: skip
            return ""
        self.actions[a.action_id] = a
        self.emit(a)
        if self.journal is not None:
            self.journal.sync()  # write-ahead, as for orders
        self.executor.act(a)
        return a.action_id

    def pending_actions(self, market: str | None = None, strategy: str | None = None) -> list[PositionAction]:
        """On-chain actions sent and not yet confirmed or failed, in the order they were sent."""
        return [a for a in self.actions.values()
                if (market is None or a.market == market) and (strategy is None or a.strategy == strategy)]  # fmt: skip

    def _pending_burn(self, strategy: str, market: str) -> int:
        return sum(a.amount for a in self.actions.values()
                   if a.market == market and a.strategy == strategy and a.action == "merge")  # fmt: skip

    def _held_by_one(self, asset_ids: Sequence[str]) -> int:
        """How many of each of ``asset_ids`` the strategies hold together, counted strategy by
        strategy (an account-level merge or convert is booked that way: :meth:`_action_owners`)."""
        pf = self.portfolio
        return sum(max(0, min(pf.size(x, s) for x in asset_ids)) for s in pf.strategies())

    def _action_refusal(self, a: PositionAction, info: MarketInfo | None) -> str:
        if info is None:
            return "market not in the catalog"
        pf = self.portfolio
        scope = a.strategy or None
        if a.action == "redeem":
            if a.market not in self.catalog.resolved:
                return "market not resolved"
            if self.settle_on != "redeem":
                return "settle = 'resolution': resolved shares are paid out at resolution"
            if any(x.action == "redeem" and x.market == a.market for x in self.actions.values()):
                return "a redeem of this market is already on its way"
            if not any(pf.size(aid) > 0 for aid in info.asset_ids):
                return "no shares of the market held"
            return ""
        if a.amount <= 0:
            return f"amount must be positive, not {a.amount}"
        if a.market in self.catalog.resolved:
            return "market resolved: redeem instead"
        if a.action == "split":
            return "" if len(info.asset_ids) == 2 else "not a binary market"
        if a.action == "merge":
            if len(info.asset_ids) != 2:
                return "not a binary market"
            free = min(pf.size(x, scope) for x in info.asset_ids) - self._pending_burn(a.strategy, a.market)
            if not a.strategy:  # booked strategy by strategy: pairs split over two strategies cannot be booked
                free = min(free, self._held_by_one(info.asset_ids) - self._pending_burn(a.strategy, a.market))
            if a.amount > free:
                return f"merge of {from_units(a.amount)} > {from_units(max(free, 0))} pairs held"
            return ""
        # convert (neg-risk): NO shares of k questions of one neg-risk event
        if not info.neg_risk or not info.event_id:
            return "not a neg-risk market"
        if not a.asset_ids:
            return "convert needs the NO tokens to convert (asset_ids)"
        if len(set(a.asset_ids)) != len(a.asset_ids):
            return "convert names the same NO token twice (asset_ids)"
        for aid in a.asset_ids:
            m = self.catalog.for_asset(aid)
            if m is None or m.event_id != info.event_id or len(m.asset_ids) != 2 or m.asset_ids[1] != aid:
                return f"{aid} is not the NO token of a market of event {info.event_id}"
            if pf.size(aid, scope) < a.amount:
                return f"{from_units(a.amount)} NO of {m.market} not held"
        if not a.strategy and self._held_by_one(a.asset_ids) < a.amount:
            return f"{from_units(a.amount)} NO of each of these markets not held by the strategies together"
        return ""

    def expected_collateral(self, a: PositionAction) -> int:
        """The collateral the contracts pay for ``a`` (negative: take), from the kernel's state:
        what a simulated executor confirms, and what a live confirmation is checked against."""
        if a.action == "merge":
            return a.amount
        if a.action == "split":
            return -a.amount
        if a.action == "convert":
            return a.amount * (len(a.asset_ids) - 1)
        winner = self.catalog.resolved.get(a.market, "")
        return self.portfolio.size(winner) if winner else 0

    def _on_chain_action(self, ev: ChainAction) -> None:
        market = ev.market
        if not market and ev.asset_ids:  # a convert named by its NO tokens
            market = self.catalog.market_of(ev.asset_ids[0], "")
        note = f"{ev.origin or 'operator'}: {ev.reason}" if ev.reason else (ev.origin or "operator")
        self.act(ev.strategy, PositionAction(action=ev.action, market=market, amount=ev.amount,
                                             asset_ids=ev.asset_ids, note=note))  # fmt: skip

    def _on_action_sent(self, ev: PositionActionSent) -> None:
        a = self.actions.get(ev.action_id)
        if a is not None:
            logger.info("on-chain {} {} sent via {}: {}", a.action, a.action_id, ev.via, ev.tx_hash)

    def _on_action_failed(self, ev: PositionActionFailed) -> None:
        a = self.actions.pop(ev.action_id, None)
        if a is not None:
            logger.warning("on-chain {} {} of {} failed: {} (nothing moved)", a.action, a.action_id, a.market, ev.reason)
            if a.action == "redeem" and self.settle_on == "redeem":
                # asked again later while the shares are held (REDEEM_RETRY_NS)
                self.timers.set(REDEEM_RETRY, a.market, self.clock.now() + REDEEM_RETRY_NS)

    def _on_action_done(self, ev: PositionActionDone) -> None:
        a = self.actions.pop(ev.action_id, None)
        if a is None:
            self.drop_input("exec", "action_not_pending", ev.action_id)
            return
        info = self.catalog.market(a.market)
        if info is None:  # (checked when sent; a catalog never forgets a market)
            logger.error("on-chain {} {} confirmed for unknown market {}", a.action, a.action_id, a.market)
            return
        pf = self.portfolio
        expected = self.expected_collateral(a)
        changed: list[tuple[str, Any]] = []
        if a.action == "redeem":
            winner = self.catalog.resolved.get(a.market, "")
            changed = pf.settle(MarketResolved(ts=ev.ts, market=a.market, asset_ids=info.asset_ids,
                                               winning_asset_id=winner))  # fmt: skip
        else:
            amount = ev.amount or a.amount
            for strat, n in self._action_owners(a, info, amount):
                burns, mints, coll = _action_legs(a.action, info, a.asset_ids, n, self.catalog)
                changed += pf.exchange(strat, burns, mints, coll, a.market)
        if ev.collateral and ev.collateral != expected:
            logger.warning("on-chain {} {}: the chain paid {} collateral, the portfolio booked {}; reconciliation "
                           "will correct the balances", a.action, a.action_id, from_units(ev.collateral),
                           from_units(expected))  # fmt: skip
        logger.info("on-chain {} {} of {} confirmed ({}): {} collateral", a.action, a.action_id, a.market,
                    ev.tx_hash, from_units(expected))  # fmt: skip
        for strat in sorted({st for st, _ in changed if st}):
            self._moved(strat, sorted({p.asset_id for st, p in changed if st == strat}), a.market, ev.ts)
        marks = pf.marks(self.books)
        self.emit(pf.pnl("", marks, ts=ev.ts))

    def _action_owners(self, a: PositionAction, info: MarketInfo, amount: int) -> list[tuple[str, int]]:
        """Whose shares an action moves: its strategy's; an account-level merge or convert is
        shared over the strategies holding them, in name order (a split goes to the account's
        ``reconcile`` owner)."""
        if a.action == "split":
            return [(a.strategy or RECONCILE, amount)]
        pf = self.portfolio
        need = info.asset_ids if a.action == "merge" else a.asset_ids
        if a.strategy:
            # never more than it holds now: shares paid out at a resolution in between (settle =
            # "resolution") must not be paid a second time by the merge's collateral
            n = min([amount] + [pf.size(x, a.strategy) for x in need])
            if n < amount:
                logger.warning("on-chain {} {}: {} holds {} of the {} shares it moves; {} booked (reconciliation "
                               "corrects the rest)", a.action, a.action_id, a.strategy, from_units(max(n, 0)),
                               from_units(amount), from_units(max(n, 0)))  # fmt: skip
            return [(a.strategy, n)] if n > 0 else []
        out, left = [], amount
        for strat in pf.strategies():
            if left <= 0:
                break
            n = min([left] + [pf.size(x, strat) for x in need])
            if n > 0:
                out.append((strat, n))
                left -= n
        return out

    def _moved(self, strategy: str, asset_ids: Sequence[str], market: str, ts: int) -> None:
        """After positions of one strategy moved: the loss bounds, its positions, their
        markets' pair views and its PnL (the account's PnL is the caller's)."""
        pf = self.portfolio
        for aid in asset_ids:
            self.losses.touch(strategy, aid)
            sp = pf.by_strategy.get((strategy, aid))
            if sp is not None:
                self.emit(PositionChanged(ts=ts, asset_id=aid, market=sp.market, size=sp.size, cost=sp.cost,
                                          realized_pnl=sp.realized, fees_paid=sp.fees, rebates=sp.rebates,
                                          strategy=strategy))  # fmt: skip
        for m in sorted({pf.market_of(aid, market) for aid in asset_ids}):
            if self.catalog.market(m) is not None:
                self.emit(pf.market_position(m, strategy, ts=ts))
        self.emit(pf.pnl(strategy, pf.marks(self.books), ts=ts))

    # ============================================================================ state handlers

    def _install_state_handlers(self) -> None:
        def sub(t: type[Event], h: Callable[[Any], Any]) -> None:
            self.bus.subscribe(t, h, priority=PRIORITY_KERNEL)

        sub(BookSnapshot, self._on_book)
        sub(BookDelta, self._on_delta)
        sub(TickSizeChange, self._on_tick_size)
        sub(TradePrint, self._on_trade)
        sub(MarketInfo, self._on_market_info)
        sub(FeedDisconnected, self._on_disconnected)
        sub(MarketResolved, self._on_resolved)
        sub(MarketStatus, self._on_market_status)
        sub(OrderEvent, self._on_order_event)
        sub(PositionCorrected, self._on_position_corrected)
        sub(CancelRequest, lambda ev: self.cancel(ev.strategy, ev.client_id, ev.reason))
        sub(Halt, lambda ev: self._set_state("halted", ev.reason or "halt"))
        sub(Resume, lambda ev: self._set_state("active", ev.reason or "resume"))
        sub(Reduce, lambda ev: self._set_state("reducing", ev.reason or "reduce"))
        sub(CancelAll, lambda ev: self.cancel_all(ev.strategy, ev.reason or "cancel_all"))
        sub(Flatten, self._on_flatten)
        sub(SetParams, self._on_set_params)
        sub(EnableStrategy, self._on_enable)
        sub(TimerFired, self._on_timer)
        sub(ChainAction, self._on_chain_action)
        sub(PositionActionSent, self._on_action_sent)
        sub(PositionActionDone, self._on_action_done)
        sub(PositionActionFailed, self._on_action_failed)

    def _on_book(self, ev: BookSnapshot) -> None:
        b = self.books.ensure(ev.asset_id, ev.market)
        self.book_changes += 1
        integ = self.integrity
        if b.pending:  # a check of the state before this snapshot: settle it first
            self._settle(b)
        b.hc = None  # re-rendered below when this snapshot is verified (else lazily)
        b.replace(ev.bids, ev.asks, ev.ts)
        if ev.tick_size and ev.tick_size != b.tick_size:
            b.tick_size = ev.tick_size
            b.tail = None
        if ev.version != b.version:
            b.version = ev.version
            b.tail = None
        b.hash = ev.hash
        b.exchange_ts = ev.exchange_ts
        c = integ.counts_for(ev.asset_id)
        c.snapshots += 1
        if ev.last_trade_price is not None:
            b.last_trade_price = ev.last_trade_price
        if integ.verify and ev.hash:
            m = integ.market(b)
            if ev.min_order_size or ev.neg_risk is not None:  # a REST book states the meta
                integ.set_meta(m, ev.min_order_size or m.min_order_size,
                               m.neg_risk if ev.neg_risk is None else ev.neg_risk)  # fmt: skip
            b.hc = BookHasher(b)
            if ev.last_trade_price is not None:  # a dump or REST book: it states the value
                integ.set_ltp(m, ev.last_trade_price)
                if integ.digest(b, ev.exchange_ts, integ.tail(b, m)) != ev.hash:
                    c.failed += 1
                    self._unhealthy(b, "snapshot hash mismatch (min_order_size/neg_risk/tick_size?)")
                    return
                c.passed += 1
            elif integ.matches(b, ev.exchange_ts, ev.hash, search=True):  # trade-triggered
                c.passed += 1
            else:
                c.unverified += 1
        if b.crossed:
            self._unhealthy(b, "crossed book in snapshot")
        elif not b.healthy:
            if c.unhealthy:
                c.resyncs += 1
            b.healthy = True
            b.unhealthy_reason = ""
            self.bus.publish(BookHealth(ts=ev.ts, asset_id=ev.asset_id, healthy=True, reason="snapshot"))

    def _on_delta(self, ev: BookDelta) -> None:
        b = self.books.get(ev.asset_id)
        if b is None:
            return  # no snapshot for this asset: ignore (another token of the market)
        self.book_changes += 1
        xts = ev.exchange_ts
        if b.pending and xts != b.pending_xts:
            self._settle(b)
        hc = b.hc
        if ev.side == "BID":
            b.set_bid(ev.price, ev.size)
            if hc is not None:
                hc.bid_changed(ev.price, ev.size)
        else:
            b.set_ask(ev.price, ev.size)
            if hc is not None:
                hc.ask_changed(ev.price, ev.size)
        b.updated_ts = ev.ts
        b.exchange_ts = xts
        if ev.hash:
            b.hash = ev.hash
        if not b.healthy:
            return  # applied, but not checked: unhealthy until a snapshot
        bb = ev.best_bid
        ba = ev.best_ask
        if (bb >= 0 and bb != b.best_bid) or (ba >= 0 and ba != b.best_ask and not (ba == SCALE and not b.best_ask)):
            self.integrity.counts_for(b.asset_id).bbo_mismatch += 1
            self._unhealthy(b, f"best bid/ask mismatch (venue {ev.best_bid}/{ev.best_ask}, book {b.best_bid}/{b.best_ask})")
            return
        if b.best_bid and b.best_ask and b.best_bid >= b.best_ask:
            self._unhealthy(b, "crossed book")
            return
        if ev.run_end and ev.hash and self.integrity.verify:
            integ = self.integrity
            if hc is None:  # e.g. after a restart from a snapshot
                hc = b.hc = BookHasher(b)
            if integ.matches(b, xts, ev.hash, search=False):
                c = integ.counts_for(b.asset_id)
                c.passed += 1
                if b.pending:
                    c.split_runs += 1
                    b.pending = ""
            else:  # maybe a run split across frames: settled when the run is over
                b.pending = ev.hash
                b.pending_xts = xts

    def _settle(self, b: Any) -> None:
        """A run ended on a mismatch: search the last trade price once, else it diverged."""
        expected, b.pending = b.pending, ""
        integ = self.integrity
        c = integ.counts_for(b.asset_id)
        if integ.matches(b, b.pending_xts, expected, search=True):
            c.passed += 1
        else:
            c.failed += 1
            self._unhealthy(b, "hash mismatch")

    def settle_books(self) -> None:
        """At the end of a replay or session: a pending check that verifies with some last
        trade price passes; one that does not is counted as unsettled (the input may have ended
        inside a run split across frames), not as a failure."""
        integ = self.integrity
        for _, b in sorted(self.books.items()):
            if b.pending:
                expected, b.pending = b.pending, ""
                c = integ.counts_for(b.asset_id)
                if integ.matches(b, b.pending_xts, expected, search=True):
                    c.passed += 1
                else:
                    c.unsettled += 1

    def _unhealthy(self, b: Any, reason: str) -> None:
        if b.healthy or b.unhealthy_reason != reason:
            if b.healthy:
                self.integrity.counts_for(b.asset_id).unhealthy += 1
            b.healthy = False
            b.unhealthy_reason = reason
            b.pending = ""
            self.bus.publish(BookHealth(ts=self.clock.now(), asset_id=b.asset_id, healthy=False, reason=reason))

    def _on_tick_size(self, ev: TickSizeChange) -> None:
        b = self.books.get(ev.asset_id)
        if b is not None:
            b.tick_size = ev.new_tick_size
            b.tail = None
            self._unhealthy(b, "tick size change")

    def _on_trade(self, ev: TradePrint) -> None:
        b = self.books.get(ev.asset_id)
        if b is not None:
            b.updated_ts = ev.ts
        integ = self.integrity
        m = integ.markets.get(ev.market or ev.asset_id)
        if m is not None:
            integ.on_print(m, ev.price)
            for bk in m.books:  # a check waiting on the new last trade price may pass now
                if bk.pending and bk.healthy and integ.matches(bk, bk.pending_xts, bk.pending, search=False):
                    bk.pending = ""
                    integ.counts_for(bk.asset_id).passed += 1

    def _on_market_info(self, ev: MarketInfo) -> None:
        known = self.catalog.market(ev.market)
        self.catalog.add(ev)
        if known is None or known.asset_ids != ev.asset_ids or known.fees != ev.fees or known.neg_risk_augmented != ev.neg_risk_augmented:
            self.losses.reset()  # markets' outcome sets (or fees) changed
        self.integrity.set_catalog_meta(ev.market, from_units(ev.min_order_size), ev.neg_risk)

    def _on_market_status(self, ev: MarketStatus) -> None:
        """The venue opened, suspended, halted or closed a market: the catalog's
        ``accepting_orders`` / ``closed`` follow (a repeat of the same state costs a lookup)."""
        info = self.catalog.market(ev.market)
        if info is None or (info.accepting_orders == ev.accepting_orders and info.closed == ev.closed):
            return
        logger.info("market {} is now {} (accepting orders: {})", ev.market, ev.state or "?", ev.accepting_orders)
        self.catalog.add(msgspec.structs.replace(info, accepting_orders=ev.accepting_orders, closed=ev.closed))

    def _on_disconnected(self, ev: FeedDisconnected) -> None:
        for aid in ev.asset_ids:
            b = self.books.get(aid)
            if b is not None:
                self._unhealthy(b, f"reconnect ({ev.feed})")

    def _on_resolved(self, ev: MarketResolved) -> None:
        self.catalog.mark_resolved(ev)
        pf = self.portfolio
        if self.settle_on == "redeem":
            info = self.catalog.market(ev.market)
            if info is None or not info.auto_settle:
                self._resolved_unredeemed(ev)
                return
        changed = pf.settle(ev)
        for strat, p in changed:
            self.losses.touch(strat, p.asset_id)
            self.emit(PositionChanged(ts=ev.ts, asset_id=p.asset_id, market=p.market, size=p.size, cost=p.cost,
                                      realized_pnl=p.realized, fees_paid=p.fees, rebates=p.rebates,
                                      strategy=strat))  # fmt: skip
        if changed:
            marks = pf.marks(self.books)
            for strat in sorted({s for s, _ in changed}):
                self.emit(pf.market_position(ev.market, strat, ts=ev.ts))
                self.emit(pf.pnl(strat, marks, ts=ev.ts))

    def _resolved_unredeemed(self, ev: MarketResolved) -> None:
        """``settle = "redeem"``: the shares stay until a confirmed redeem pays them; they are
        marked at their payout from now on. With ``auto_redeem`` the redeem is asked for at
        once (for the whole account: the contracts redeem the wallet's balance)."""
        pf = self.portfolio
        info = self.catalog.market(ev.market)
        aids = ev.asset_ids or (info.asset_ids if info is not None else ())
        holders = sorted({s for s in pf.strategies() for a in aids if pf.size(a, s) > 0})
        marks = pf.marks(self.books)
        for strat in holders:
            self.emit(pf.pnl(strat, marks, ts=ev.ts))
        if holders:
            self.emit(pf.pnl("", marks, ts=ev.ts))
        if self.auto_redeem and any(pf.size(a) > 0 for a in aids):
            self.act("", PositionAction(action="redeem", market=ev.market, note="auto_redeem"))

    def _on_order_event(self, ev: OrderEvent) -> None:
        cls = ev.__class__
        if cls in _ORDER_NOTES:
            self._on_order_note(ev)
            return
        if cls is CancelSubmitted:
            self._cancel_sent.discard(ev.client_id)
        o, err = self.orders.apply(ev)
        if err is not None:
            self.stats.illegal_transitions += 1
            if ("orders", "illegal_transition") not in self._logged_drops:
                self._logged_drops.add(("orders", "illegal_transition"))
                logger.warning("order state machine refused an event: {} (further ones are counted)", err)
            self.emit(OrderStateError(ts=self.clock.now(), client_id=ev.client_id, event_type=type_name(type(ev)),
                                      from_state=o.state if o is not None else "",
                                      to_state=EVENT_STATE.get(type(ev), ""), reason=err))  # fmt: skip
            return
        assert o is not None
        if isinstance(ev, FillEvent):
            self.stats.fills += 1
            pf = self.portfolio
            acct0 = _fields(pf.positions.get(ev.asset_id))
            own0 = _fields(pf.by_strategy.get((o.strategy, ev.asset_id)))
            cash0 = pf.cash_delta
            pf.apply_fill(o.strategy, ev)
            self._record_fill(ev, o.strategy, acct0, own0, cash0)
            if o.is_open:
                self._reserve(o.intent, o.strategy, o.remaining)
            else:
                self.exposure.release(o.client_id)
            other = self._net_pairs(o.strategy, ev.asset_id)
            if other:
                self._moved(o.strategy, (ev.asset_id, other), ev.market, ev.ts)
                self.emit(pf.pnl("", pf.marks(self.books), ts=ev.ts))
            else:
                self._position_events(o.strategy, ev.asset_id, ev.ts, ev.market)
        elif not o.is_open:
            self.exposure.release(o.client_id)
            if o.intent.side == "SELL":  # the shares it offered are free: they may make pairs now
                other = self._net_pairs(o.strategy, o.asset_id)
                if other:
                    pf = self.portfolio
                    self._moved(o.strategy, (o.asset_id, other), o.intent.market, ev.ts)
                    self.emit(pf.pnl("", pf.marks(self.books), ts=ev.ts))

    # ---------------------------------------------------------------- sports and odds

    def _boarded(self, decoder: Decoder) -> Decoder:
        """``decoder`` with its game states and odds quotes passed through the scoreboard and
        the odds board: repeats are dropped (counted), so strategies hear only news. Used for
        the ``sports.*``, ``odds.*`` and ``events`` sources."""

        def dec(msg: bytes, ts: int) -> Sequence[Event]:
            try:
                return self._board(decoder(msg, ts))
            except FrameError as exc:
                exc.events = tuple(self._board(exc.events))
                raise

        return dec

    def _decode_events(self, msg: bytes, ts: int) -> Sequence[Event]:
        """The ``events`` source: :func:`decode_events`, with game states and odds quotes passed
        through the boards (a class check per event; no extra call for other inputs)."""
        if msg[:1] == b"[":
            evs: Sequence[Event] = _restamp(LIST_DECODER.decode(msg), ts)
        else:
            evs = _restamp((DECODER.decode(msg),), ts)
        for e in evs:
            c = e.__class__
            if c is GameState or c is OddsQuote:
                return self._board(evs)
        return evs

    def _board(self, events: Sequence[Event]) -> Sequence[Event]:
        out: list[Event] | None = None
        for i, e in enumerate(events):
            c = e.__class__
            news = True
            if c is GameState:
                news = self.scoreboard.accept(e)  # type: ignore[arg-type]
            elif c is OddsQuote:
                news = self.odds.accept(e)  # type: ignore[arg-type]
            if not news:
                self.stats.sports_repeats += 1
                if out is None:
                    out = list(events[:i])
            elif out is not None:
                out.append(e)
        return events if out is None else out

    # ---------------------------------------------------------------- executor reports

    def _decode_exec(self, msg: bytes, ts: int) -> Sequence[Event]:
        """The decoder of every ``exec.*`` source: the executor's events, repeats filtered (so
        market-data inputs pay nothing for it)."""
        return self._exec_filter(decode_exec(msg, ts))

    def _exec_filter(self, events: Sequence[Event]) -> Sequence[Event]:
        """An executor's report may repeat a fill (a trade seen on the user channel and again in
        REST after a reconnect): a fill already applied for that order is dropped (counted), so
        nothing downstream (strategies, reports) sees it twice. A reversal of a fill that was
        never applied, or already reversed, is dropped too."""
        out: list[Event] = []
        fills = self.fills
        seen: set[str] = set()
        for ev in events:
            c = ev.__class__
            if c is OrderFilled or c is OrderPartiallyFilled:
                key = f"{ev.client_id}/{ev.trade_id}"  # type: ignore[attr-defined]
                if key in fills or key in seen:
                    self.stats.duplicate_fills += 1
                    continue
                seen.add(key)
            elif c is FillReversed:
                r = fills.get(f"{ev.client_id}/{ev.trade_id}")  # type: ignore[attr-defined]
                if r is None or r.reversed:
                    self.drop_input("exec", "reversal_of_unknown_fill", f"{ev.client_id}/{ev.trade_id}")  # type: ignore[attr-defined]
                    continue
            out.append(ev)
        return out

    def _record_fill(self, ev: FillEvent, strategy: str, acct0: list[int], own0: list[int], cash0: int) -> None:
        pf = self.portfolio
        acct = [a - b for a, b in zip(_fields(pf.positions.get(ev.asset_id)), acct0)]
        own = [a - b for a, b in zip(_fields(pf.by_strategy.get((strategy, ev.asset_id))), own0)]
        fills = self.fills
        fills[f"{ev.client_id}/{ev.trade_id}"] = FillRecord(ev.client_id, ev.trade_id, strategy, ev.asset_id, ev.side,
                                                           ev.price, ev.size, ev.fee, acct, own, pf.cash_delta - cash0)  # fmt: skip
        if len(fills) > MAX_FILL_RECORDS:
            del fills[next(iter(fills))]

    def _on_order_note(self, ev: OrderEvent) -> None:
        """Executor reports that are not state-machine transitions."""
        cls = ev.__class__
        if cls is OrderAdopted:
            self._adopt(ev)  # type: ignore[arg-type]
            return
        o = self.orders.get(ev.client_id)
        if cls is OrderSigned:
            if o is not None and ev.venue_order_id:
                o.venue_order_id = ev.venue_order_id
            return
        r = self.fills.get(f"{ev.client_id}/{ev.trade_id}")  # type: ignore[attr-defined]
        if cls is FillSettlement:
            if r is not None:
                r.status = ev.status  # type: ignore[attr-defined]
            return
        if r is None or r.reversed:  # (FillReversed; filtered at the door, kept safe here)
            return
        self._reverse(r, ev)  # type: ignore[arg-type]

    def _reverse(self, r: FillRecord, ev: FillReversed) -> None:
        pf = self.portfolio
        r.reversed = True
        r.status = "FAILED"
        acct = pf.positions.get(r.asset_id)
        own = pf.by_strategy.get((r.strategy, r.asset_id))
        if acct is not None:
            _undo(acct, r.account)
        if own is not None:
            _undo(own, r.own)
        pf.cash_delta -= r.cash
        self.stats.fills -= 1
        o = self.orders.get(r.client_id)
        if o is not None:
            o.filled -= r.size
            o.cost -= r.price * r.size // 1_000_000
            o.fees -= r.fee
            if o.state == "filled" and o.remaining and o.intent.tif in ("GTC", "GTD"):
                # a resting order whose fill failed rests again at the venue: it is open again
                o.state = "partially_filled" if o.filled else "accepted"
            self.orders._set_open(o, o.is_open)
            if o.is_open:
                self._reserve(o.intent, o.strategy, o.remaining)
        logger.warning("fill reversed (trade {} FAILED): {} {} {} @ {} of {} undone", r.trade_id, r.strategy, r.side,
                       r.size, r.price, r.client_id)  # fmt: skip
        self._position_events(r.strategy, r.asset_id, ev.ts)

    def _net_pairs(self, strategy: str, asset_id: str) -> str:
        """On a venue that keeps one net position per market (``MarketInfo.netting``), a fill
        that leaves ``strategy`` holding both outcomes closes the pairs at once, as the venue
        does: each YES+NO pair becomes 1 of collateral (a merge: ``1 - pair cost`` realized).
        Shares the strategy's open SELLs offer are not netted (that SELL would then sell what
        is no longer held and book a negative position): they pair once it is done. Returns the
        other asset when pairs were netted, else ``""``. One dict lookup for the markets of
        other venues."""
        info = self.catalog.for_asset(asset_id)
        if info is None or not info.netting or len(info.asset_ids) != 2:
            return ""
        pf = self.portfolio
        a, b = info.asset_ids
        offered = self.orders.open_shares
        n = min(pf.size(a, strategy) - offered(strategy, a, "SELL"), pf.size(b, strategy) - offered(strategy, b, "SELL"))
        if n <= 0:
            return ""
        pf.exchange(strategy, ((a, n), (b, n)), (), n, info.market)
        return b if asset_id == a else a

    def _position_events(self, strategy: str, asset_id: str, ts: int, market: str = "") -> None:
        """After a position moved (a fill, its reversal, a correction): the loss bounds, then
        the strategy's position, its market's pair view, its PnL and the account's."""
        self._moved(strategy, (asset_id,), market, ts)
        pf = self.portfolio
        self.emit(pf.pnl("", pf.marks(self.books), ts=ts))

    def _adopt(self, ev: OrderAdopted) -> None:
        if ev.client_id in self.orders:
            return
        it = msgspec.structs.replace(ev.intent, client_id=ev.client_id, ts=ev.ts)
        o = self.orders.create(it, ev.ts)
        o.state = "accepted"
        o.filled = min(ev.filled, it.size)
        o.venue_order_id = ev.venue_order_id
        self.orders._set_open(o, True)
        self._reserve(it, it.strategy, o.remaining)
        logger.warning("adopted an order the journal did not know: {} {} {} @ {} ({})", it.side, it.size, it.asset_id,
                       it.price, ev.venue_order_id)  # fmt: skip

    def _on_position_corrected(self, ev: PositionCorrected) -> None:
        """Book the difference between the venue's position and ours to ``reconcile``."""
        pf = self.portfolio
        diff = ev.new_size - pf.size(ev.asset_id)
        if not diff:
            return
        f = OrderFilled(ts=ev.ts, client_id="", trade_id="reconcile", asset_id=ev.asset_id, market=ev.market,
                        side="BUY" if diff > 0 else "SELL", price=ev.price, size=abs(diff), liquidity="maker")  # fmt: skip
        pf.apply_fill(RECONCILE, f)
        logger.warning("position corrected from the venue: {} {} -> {} ({})", ev.asset_id, from_units(ev.new_size - diff),
                       from_units(ev.new_size), ev.reason)  # fmt: skip
        self._position_events(RECONCILE, ev.asset_id, ev.ts)

    def halt(self, reason: str) -> None:
        """Halt trading from inside the engine (a risk limit tripped)."""
        self._set_state("halted", reason)

    def _set_state(self, state: str, reason: str) -> None:
        prev = self.trading_state
        if prev == state:
            return
        self.trading_state = state
        self.emit(TradingStateChanged(ts=self.clock.now(), state=state, previous=prev, reason=reason))  # type: ignore[arg-type]
        for cb in self.on_state_change:
            cb()

    def _on_flatten(self, ev: Flatten) -> None:
        """Cancel everything, enter reducing, and sell every position at the best available
        prices down to the best bid minus ``max_slippage`` (the event's, else
        ``[risk] flatten_max_slippage``), FAK, through the risk chain like any order."""
        self.cancel_all(reason="flatten")
        self._set_state("reducing", ev.reason or "flatten")
        for (strat, aid), pos in sorted(self.portfolio.by_strategy.items()):
            size = pos.size - pos.size % LOT
            if size <= 0:
                continue
            b = self.books.get(aid)
            if b is None or not b.best_bid:
                logger.warning("flatten: no bid for {}, position of {} left open", aid, strat)
                continue
            tick = b.tick_size or 10_000
            floor = b.best_bid - (ev.max_slippage or self.flatten_max_slippage)
            price = max(tick, -(-floor // tick) * tick)  # on the grid, never below the cap
            self.submit(strat, OrderIntent(strategy=strat, asset_id=aid, market=pos.market, side="SELL",
                                           price=price, size=size, tif="FAK", kind="market",
                                           reduce_only=True, note="flatten"))  # fmt: skip

    def _on_set_params(self, ev: SetParams) -> None:
        s = self.strategies.get(ev.strategy)
        if s is None:
            self.drop_input("control", "unknown_strategy", ev.strategy)
            return
        merged = params_table(s.params) | ev.params  # Units as decimals, not as whole units
        try:
            new = convert_params(type(s.params), merged)
        except msgspec.ValidationError as exc:
            self.drop_input("control", "bad_params", f"{ev.strategy}: {exc}")
            return
        old, s.params = s.params, new
        s.on_params(old, new)

    def _on_enable(self, ev: EnableStrategy) -> None:
        s = self.strategies.get(ev.strategy)
        if s is None:
            self.drop_input("control", "unknown_strategy", ev.strategy)
            return
        self._set_enabled(s, ev.enabled)

    def _set_enabled(self, s: Strategy, enabled: bool, cancel: bool = True) -> None:
        """Enable or disable a strategy. A disabled one gets no events and no timers, and its
        open orders are cancelled (a quote left resting with nobody managing it is a loss
        waiting to happen); its positions stay (``flatten`` closes them). ``cancel=False``
        (restoring a snapshot) only sets the flag: the session that disabled it already sent
        those cancels, and a restore must not act (nor reach the executor unjournaled)."""
        if s.enabled == enabled:
            return
        s.enabled = enabled
        for t, h, k in s._subs:
            if enabled:
                self.bus.subscribe(t, h, k)
            else:
                self.bus.unsubscribe(h, t)
        if not enabled and cancel:
            n = self.cancel_all(s.id, "strategy disabled")
            logger.info("strategy {} disabled: {} open order(s) cancelled", s.id, n)

    def _on_timer(self, ev: TimerFired) -> None:
        if ev.owner == REDEEM_RETRY:
            self._retry_redeem(ev.name)
            return
        s = self.strategies.get(ev.owner)
        if s is not None and s.enabled:
            s.on_timer(ev)

    def _retry_redeem(self, market: str) -> None:
        """A failed redeem of a resolved market whose shares are still held is asked for again
        (the chain may not know the payouts yet, the RPC may have been down, a restart may have
        cut it short): the shares would otherwise wait for ever."""
        info = self.catalog.market(market)
        if (info is None or market not in self.catalog.resolved or self.settle_on != "redeem"
                or not any(self.portfolio.size(a) > 0 for a in info.asset_ids)
                or any(a.action == "redeem" and a.market == market for a in self.actions.values())):  # fmt: skip
            return
        self.act("", PositionAction(action="redeem", market=market, note="redeem retry"))

    # ============================================================================ state

    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue after a restart (with the journal tail)."""
        return {
            "version": STATE_VERSION,
            "clock": self.clock.now(),
            "seq": self._seq,
            "plan_seq": self._plan_seq,
            "trading_state": self.trading_state,
            "timers": self.timers.pending(),
            "books": self.books.to_state(),
            "catalog": [msgspec.json.decode(ENCODER.encode(i)) for i in self.catalog.to_state()],
            "resolved": dict(sorted(self.catalog.resolved.items())),
            "scoreboard": self.scoreboard.to_state(),
            "odds": self.odds.to_state(),
            "portfolio": self.portfolio.to_state(),
            "orders": self.orders.to_state(),
            "fills": [attrs.astuple(r) for r in self.fills.values()],
            "exposure": self.exposure.to_state(),
            "actions": [msgspec.json.decode(ENCODER.encode(a)) for a in self.actions.values()],
            "act_seq": self._act_seq,
            "rolling": self.rolling.to_state() if self.rolling is not None else [],
            "executor": {"name": self.executor.name, "state": self.executor.to_state()},
            "modes": self.executions.to_state(),
            "risk": self.risk.to_state(),
            "strategies": {
                k: {"enabled": s.enabled, "params": msgspec.to_builtins(s.params, enc_hook=enc_hook), "state": s.snapshot()}
                for k, s in sorted(self.strategies.items())
            },
        }

    def restore(self, st: dict[str, Any]) -> None:
        if st.get("version") != STATE_VERSION:
            raise ValueError(f"snapshot version {st.get('version')} is not {STATE_VERSION}")
        self.clock = ReplayClock(st["clock"])
        self._seq = st["seq"]
        self._plan_seq = st["plan_seq"]
        self.trading_state = st["trading_state"]
        self.timers.restore([tuple(x) for x in st["timers"]])
        self.books.restore(st["books"])
        self.catalog.restore([msgspec.convert(i, MarketInfo) for i in st["catalog"]], st["resolved"])
        self.scoreboard.restore(st.get("scoreboard", {}))
        self.odds.restore(st.get("odds", []))
        self.portfolio.restore(st["portfolio"])
        self.orders.restore(st["orders"])
        self.fills = {f"{r[0]}/{r[1]}": FillRecord(*r) for r in st.get("fills", [])}
        self.exposure.restore(st["exposure"])
        self.actions = {a.action_id: a for a in (msgspec.convert(x, PositionAction) for x in st.get("actions", []))}
        self._act_seq = st.get("act_seq", 0)
        self.losses.reset()
        self.executions.restore(st.get("modes", []))
        self.risk.restore(st.get("risk", {}))
        ex = st.get("executor")
        if ex is not None and ex.get("state") is not None:
            if ex.get("name") == self.executor.name:
                self.executor.restore(ex["state"])
            else:
                logger.warning("snapshot has state for executor {!r}, not {!r}: not restored", ex.get("name"), self.executor.name)
        if self.rolling is not None:
            self.rolling.restore(st.get("rolling", []))
        for k, sst in st["strategies"].items():
            s = self.strategies.get(k)
            if s is None:
                logger.warning("snapshot has state for strategy {!r}, which is not configured", k)
                continue
            self._set_enabled(s, sst["enabled"], cancel=False)
            if sst.get("state") is not None:
                s.restore(sst["state"])

    def summary_state(self) -> dict[str, Any]:
        """The comparable part of the state (positions, open orders, PnL, risk state)."""
        st = self.to_state()
        return {k: st[k] for k in ("seq", "trading_state", "portfolio", "orders", "exposure", "actions", "timers",
                                   "executor", "modes", "risk", "strategies")}  # fmt: skip


#: executor reports that are not state-machine transitions
_ORDER_NOTES: frozenset[type] = frozenset({OrderSigned, FillSettlement, FillReversed, OrderAdopted})


def _action_legs(action: str, info: MarketInfo, asset_ids: tuple[str, ...], amount: int,
                 catalog: Catalog) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:  # fmt: skip
    """(burns, mints, collateral) of a merge, split or neg-risk convert of ``amount``."""
    if action == "merge":
        return [(x, amount) for x in info.asset_ids], [], amount
    if action == "split":
        return [], [(x, amount) for x in info.asset_ids], -amount
    # convert: the NOs of k questions -> (k - 1) collateral + the YES of every other question
    converted = {catalog.market_of(x) for x in asset_ids}
    others = [m.asset_ids[0] for m in catalog.event_markets(info.event_id)
              if m.market not in converted and len(m.asset_ids) == 2]  # fmt: skip
    return [(x, amount) for x in asset_ids], [(y, amount) for y in others], amount * (len(asset_ids) - 1)


def _sanity(it: OrderIntent) -> str:
    """What no validator may approve: non-positive sizes, prices outside (0, 1), sizes off the lot."""
    if it.size <= 0 or it.price <= 0:
        return f"size and price must be positive (size={it.size}, price={it.price})"
    if it.price >= SCALE:
        return f"price {from_units(it.price)} is not below 1 (a share pays at most 1)"
    if it.size % LOT:
        return f"size {it.size} is not a multiple of the 0.01-share lot"
    return ""


def _with_ids(d: Decision, ids: tuple[str, ...]) -> Decision:
    return attrs.evolve(d, client_ids=ids)
