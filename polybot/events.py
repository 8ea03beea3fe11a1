"""The one event vocabulary of polybot.

Every event is a frozen, tagged :class:`msgspec.Struct`: the whole set encodes to JSON and decodes
back with one decoder (:data:`DECODER`), which is how the journal stores the engine's own events
and how the ``events`` input source carries ready-made events.

Units (exact, never floats):

* prices, sizes, amounts, fees and PnL are integers in 6-decimal base units, the unit the signed
  CLOB order carries: 0.45 USDC -> ``450_000``; 10 shares -> ``10_000_000``; a price of 0.455
  -> ``455_000``. :mod:`polybot.units` converts at the edges.
* timestamps are integer nanoseconds since the Unix epoch (``ts`` is always the kernel's time,
  i.e. the receive time of the input that caused the event).
* probabilities, confidences and bookmaker odds are the only floats: they are model outputs, and
  every price or size derived from them is rounded explicitly before it becomes an intent.

Bus routing: the event class is the routing key; events with an ``asset_id`` field can also be
routed by asset (``bus.subscribe(BookDelta, handler, key=asset_id)``).
"""

from __future__ import annotations

from typing import Any, Literal, Union

import msgspec

Side = Literal["BUY", "SELL"]
BookSide = Literal["BID", "ASK"]
TimeInForce = Literal["GTC", "GTD", "FOK", "FAK"]
OrderKind = Literal["limit", "market"]
Liquidity = Literal["maker", "taker"]
TradingState = Literal["active", "reducing", "halted"]

#: A price level: (price, size), both in base units.
Level = tuple[int, int]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    """Base of every event. ``ts`` is the kernel time (ns) at which the event was created."""

    ts: int = 0


# --------------------------------------------------------------------------------------------
# Market data
# --------------------------------------------------------------------------------------------


class MarketDataEvent(Event, frozen=True, kw_only=True):
    """Base for per-asset market data. ``exchange_ts`` is the venue's own time (ns), if given."""

    asset_id: str
    market: str = ""
    exchange_ts: int = 0


class BookSnapshot(MarketDataEvent, frozen=True, kw_only=True, tag="book"):
    """Full L2 state of one asset; replaces the local book. Levels in any order."""

    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    hash: str = ""
    tick_size: int = 0  # base units, 0 = unchanged / unknown
    last_trade_price: str | None = None  # as the venue wrote it ("" = none); None = not stated
    version: str = ""
    #: Hash inputs the venue states only in REST books ("" / None = not stated).
    min_order_size: str = ""
    neg_risk: bool | None = None


class BookDelta(MarketDataEvent, frozen=True, kw_only=True, tag="book_delta"):
    """One level changed. ``size`` is the new absolute size at ``price``; 0 removes the level.

    ``best_bid``/``best_ask`` are the venue's top of book after the change (0 = that side is
    empty, -1 = not given);
    ``hash`` the venue's book hash after the change run; ``run_end`` is True on the last entry
    of a same-timestamp run (where the hash is meaningful).
    """

    side: BookSide
    price: int
    size: int
    best_bid: int = -1
    best_ask: int = -1
    hash: str = ""
    run_end: bool = True


class TradePrint(MarketDataEvent, frozen=True, kw_only=True, tag="trade"):
    """A public trade (Polymarket ``last_trade_price``). ``side`` is the taker's side."""

    price: int
    size: int
    side: Side | None = None
    fee_rate_bps: int = 0
    tx_hash: str = ""


class TickSizeChange(MarketDataEvent, frozen=True, kw_only=True, tag="tick_size"):
    old_tick_size: int
    new_tick_size: int


class BestBidAsk(MarketDataEvent, frozen=True, kw_only=True, tag="bbo"):
    best_bid: int  # 0 = no bid
    best_ask: int  # 0 = no ask


class MarketResolved(Event, frozen=True, kw_only=True, tag="market_resolved"):
    market: str
    asset_ids: tuple[str, ...] = ()
    winning_asset_id: str = ""
    winning_outcome: str = ""
    exchange_ts: int = 0


class MarketStatus(Event, frozen=True, kw_only=True, tag="market_status"):
    """The venue changed a market's trading state (open, suspended, halted, closed, ...):
    ``accepting_orders`` and ``closed`` replace the catalog's values, so the risk chain and the
    paper executor stop (or resume) trading it. ``state`` is the venue's word, lower case."""

    market: str
    state: str = ""
    accepting_orders: bool = True
    closed: bool = False
    exchange_ts: int = 0


# --------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------


class FeeSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """A market's fees. ``model = "curve"`` (the CLOB): taker fee ``shares * rate * (p(1-p))**
    exponent``, makers earn ``rebate_ppm`` of the fill's fee-equivalent. ``model = "notional"``
    (Polymarket US): taker fee ``rate * notional`` and maker rebate ``rebate_ppm * notional``,
    the notional being ``shares * p`` for a buy and ``shares * (1 - p)`` for a sell, rounded to
    the cent (half to even). Rates in millionths."""

    rate_ppm: int = 0
    exponent: int = 1
    taker_only: bool = True
    rebate_ppm: int = 0
    model: Literal["curve", "notional"] = "curve"


class SportsMarket(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What ties a Polymarket sports market to a game (Gamma's sports fields).

    ``game_id`` is Gamma's ``gameId`` (the market's, else its event's): the same id as the
    sports WebSocket's ``gameId``. ``market_type`` is ``sportsMarketType`` as Gamma writes it
    (``moneyline``, ``spreads``, ``totals``, ``map_handicap``, ...). ``line`` is the spread or
    total line (a model input, so a float): for a spread it applies to ``outcomes[0]`` (Gamma's
    "FaZe (-1.5)" is ``line = -1.5`` with FaZe first). ``teams`` are the two sides as the event
    title names them ("A vs. B" -> ("A", "B")), in the title's order, which says nothing about
    home and away. ``delay_ms`` is the venue's matching delay for marketable orders while the
    game is in play (Gamma ``secondsDelay``)."""

    game_id: str = ""
    market_type: str = ""
    line: float | None = None
    start_ts: int = 0  # game start (ns), Gamma gameStartTime / eventStartTime
    delay_ms: int = 0
    league: str = ""  # series slug or league ("nba", "counter-strike", ...)
    teams: tuple[str, ...] = ()
    title: str = ""  # groupItemTitle ("Match Winner", "O/U 174.5", ...)


class MarketInfo(Event, frozen=True, kw_only=True, tag="market_info"):
    """A tradable market from the catalog (Gamma / CLOB REST / ``new_market``)."""

    market: str  # condition id
    asset_ids: tuple[str, ...]  # same order as ``outcomes`` (index 0 = YES / Up)
    outcomes: tuple[str, ...] = ()
    question: str = ""
    slug: str = ""
    event_id: str = ""
    event_slug: str = ""
    tick_size: int = 10_000  # 0.01
    min_order_size: int = 5_000_000  # 5 shares
    neg_risk: bool = False
    neg_risk_augmented: bool = False
    neg_risk_market_id: str = ""
    end_ts: int = 0
    start_ts: int = 0  # when the market was listed
    #: a recurring market's window start (ns): Gamma eventStartTime, else the slug's; 0 = none
    window_start_ts: int = 0
    active: bool = True
    closed: bool = False
    accepting_orders: bool = True
    fees: FeeSchedule | None = None
    version: str = "v1"
    series: str = ""
    tags: tuple[str, ...] = ()
    sports: SportsMarket | None = None  # set for sports markets (Gamma ``sportsMarketType``)
    # the venue keeps ONE net position per market (a YES bought against NO held closes it): the
    # portfolio merges a YES+NO pair into collateral as soon as a fill makes one, as the venue
    # does; the market id then carries the venue ("<venue>:<id>", see polybot.venues)
    netting: bool = False
    # the venue pays resolved positions into cash itself (no redeem to send): the portfolio
    # settles at the resolution even with ``[portfolio] settle = "redeem"``
    auto_settle: bool = False


# --------------------------------------------------------------------------------------------
# Sports and odds
# --------------------------------------------------------------------------------------------


class GameState(Event, frozen=True, kw_only=True, tag="game_state"):
    """Live state of one game from a score feed. ``feed_ts`` is the feed's own time (ns)."""

    game_id: str
    league: str = ""  # the feed's league ("nfl", "epl", "wta challenger", ...)
    sport: str = ""  # family: soccer basketball football hockey baseball tennis esports cricket | ""
    slug: str = ""
    home: str = ""
    away: str = ""
    home_score: int = 0  # points / goals / runs; tennis: sets; esports: maps
    away_score: int = 0
    score: str = ""  # the feed's raw score text, e.g. "3-16", "4-6, 1-2", "000-000|2-0|Bo3"
    period: str = ""  # as the feed writes it: "Q4", "2H", "HT", "FT", "S2", "2/3", ...
    clock: str = ""  # the feed's raw elapsed text ("5:18", "74")
    #: seconds elapsed as the feed states them: in the current period for a clock ("5:18"),
    #: in the match for a bare minute count ("74", soccer); None = not stated
    elapsed_s: int | None = None
    elapsed_scope: str = ""  # "period" | "match" | ""
    status: str = ""
    live: bool = False
    ended: bool = False
    turn: str = ""  # possession (NFL/CFB)
    feed: str = ""  # the source that reported it
    feed_ts: int = 0  # the feed's own time of this state (ns), 0 = not stated


class OddsQuote(Event, frozen=True, kw_only=True, tag="odds"):
    """One bookmaker's price for one outcome. ``price`` is decimal odds (a model input)."""

    event_id: str
    bookmaker: str
    market: str  # h2h | spreads | totals
    outcome: str
    price: float
    point: float | None = None
    sport: str = ""
    home: str = ""
    away: str = ""
    commence_ts: int = 0
    last_update_ts: int = 0
    feed: str = ""


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


class OrderIntent(Event, frozen=True, kw_only=True, tag="intent"):
    """What a strategy wants. The kernel assigns ``client_id`` (deterministic) in ``submit()``.

    ``price`` is the limit (for a market order, the worst acceptable price); ``size`` is shares.
    ``expire_ts`` (ns) applies to GTD. ``probability``/``confidence`` feed Kelly-style sizing.
    """

    strategy: str
    asset_id: str
    side: Side
    price: int
    size: int
    market: str = ""
    kind: OrderKind = "limit"
    tif: TimeInForce = "GTC"
    post_only: bool = False
    expire_ts: int = 0
    plan_id: str = ""
    client_id: str = ""
    probability: float | None = None
    confidence: float | None = None
    reduce_only: bool = False
    note: str = ""


class OrderPlan(Event, frozen=True, kw_only=True, tag="plan"):
    """A multi-leg decision that the risk chain passes whole or not at all."""

    strategy: str
    plan_id: str
    legs: tuple[OrderIntent, ...]
    note: str = ""
    # False: a resize by the risk chain rejects the plan instead (e.g. legs whose signed amounts
    # are exact only at the planned share count)
    resizable: bool = True


class CancelRequest(Event, frozen=True, kw_only=True, tag="cancel_request"):
    strategy: str
    client_id: str
    reason: str = ""


# --------------------------------------------------------------------------------------------
# Risk decisions
# --------------------------------------------------------------------------------------------


class RiskDecisionEvent(Event, frozen=True, kw_only=True):
    strategy: str
    client_ids: tuple[str, ...] = ()
    plan_id: str = ""
    validator: str = ""
    reason: str = ""


class RiskApproved(RiskDecisionEvent, frozen=True, kw_only=True, tag="risk_approved"):
    reserved: int = 0  # worst-case exposure reserved, base units


class RiskResized(RiskDecisionEvent, frozen=True, kw_only=True, tag="risk_resized"):
    old_size: int
    new_size: int
    reserved: int = 0


class RiskRejected(RiskDecisionEvent, frozen=True, kw_only=True, tag="risk_rejected"):
    pass


# --------------------------------------------------------------------------------------------
# Execution (order lifecycle)
# --------------------------------------------------------------------------------------------


class OrderEvent(Event, frozen=True, kw_only=True):
    client_id: str
    strategy: str = ""
    asset_id: str = ""
    venue_order_id: str = ""


class OrderSubmitted(OrderEvent, frozen=True, kw_only=True, tag="order_submitted"):
    """The order as handed to the executor; journaled and fsynced before it is sent."""

    intent: OrderIntent


class OrderAccepted(OrderEvent, frozen=True, kw_only=True, tag="order_accepted"):
    """The venue took the order. ``delayed``: a marketable order on an in-play sports market
    whose matching the venue holds back for the market's delay (Polymarket answers ``delayed``);
    its fills, or the cancel of what found no match, come after the delay."""

    delayed: bool = False


class OrderRejected(OrderEvent, frozen=True, kw_only=True, tag="order_rejected"):
    reason: str = ""


class FillEvent(OrderEvent, frozen=True, kw_only=True):
    """A fill of one of our orders. ``fee`` is in ``fee_asset`` base units (V2: collateral)."""

    trade_id: str
    side: Side
    price: int
    size: int
    liquidity: Liquidity
    fee: int = 0
    fee_asset: str = "pUSD"
    rebate: int = 0  # maker rebate earned by this fill (estimate; the venue pays it daily)
    market: str = ""
    leaves: int = 0  # size still open on the order after this fill


class OrderPartiallyFilled(FillEvent, frozen=True, kw_only=True, tag="order_partial"):
    pass


class OrderFilled(FillEvent, frozen=True, kw_only=True, tag="order_filled"):
    pass


class OrderCancelled(OrderEvent, frozen=True, kw_only=True, tag="order_cancelled"):
    reason: str = ""


class OrderExpired(OrderEvent, frozen=True, kw_only=True, tag="order_expired"):
    pass


class OrderUnknown(OrderEvent, frozen=True, kw_only=True, tag="order_unknown"):
    """A submit whose outcome is not known (timeout, transport error): reconcile before reuse."""

    reason: str = ""


class CancelSubmitted(OrderEvent, frozen=True, kw_only=True, tag="cancel_submitted"):
    reason: str = ""


class OrderSigned(OrderEvent, frozen=True, kw_only=True, tag="order_signed"):
    """A live executor signed the order (``venue_order_id`` is its hash, the venue's id): what
    it will send, or, in a dry run, what it would have sent. No state change."""

    maker_amount: int = 0
    taker_amount: int = 0
    exchange: str = ""  # the verifying contract the signature is for
    dry_run: bool = False


class FillSettlement(OrderEvent, frozen=True, kw_only=True, tag="fill_settlement"):
    """A fill moving through on-chain settlement (MATCHED -> MINED -> CONFIRMED; RETRYING is
    reported here too). The fill itself counted once, at its first report; no money moves."""

    trade_id: str
    status: str


class FillReversed(OrderEvent, frozen=True, kw_only=True, tag="fill_reversed"):
    """A fill whose trade FAILED on chain: the kernel undoes exactly what the fill did to the
    positions, cash and PnL."""

    trade_id: str
    reason: str = ""


class OrderAdopted(OrderEvent, frozen=True, kw_only=True, tag="order_adopted"):
    """Reconciliation found an order at the venue that the journal does not know and adopts it
    (``intent`` describes it; its strategy is the adopting owner). It is open from now on."""

    intent: OrderIntent
    filled: int = 0


class OrderStateError(Event, frozen=True, kw_only=True, tag="order_state_error"):
    """An order event that the state machine refused (a transition not in its table, or an
    unknown order): reported, never applied silently."""

    client_id: str
    event_type: str
    from_state: str = ""
    to_state: str = ""
    reason: str = ""


# --------------------------------------------------------------------------------------------
# On-chain position actions (merge, split, redeem, convert)
# --------------------------------------------------------------------------------------------

PositionActionKind = Literal["merge", "split", "redeem", "convert"]


class PositionAction(Event, frozen=True, kw_only=True, tag="position_action"):
    """A decision to change positions on chain (the kernel assigns ``action_id`` and journals
    and fsyncs it before the executor sees it):

    * ``merge``: burn ``amount`` shares of each outcome of ``market`` for ``amount`` collateral;
    * ``split``: ``amount`` collateral into ``amount`` shares of each outcome;
    * ``redeem``: after resolution, every share of ``market`` held for its payout (``amount``
      is 0: the contracts redeem the whole balance);
    * ``convert`` (neg-risk): ``amount`` NO shares of each market in ``asset_ids`` (k of the
      event's m questions) into ``amount x (k - 1)`` collateral plus ``amount`` YES of every
      other question of the event.

    ``strategy`` is the owner ("" = the account: a redeem settles every strategy's shares).
    The portfolio moves only when the executor reports :class:`PositionActionDone`."""

    action_id: str = ""
    action: PositionActionKind
    market: str
    strategy: str = ""
    amount: int = 0
    asset_ids: tuple[str, ...] = ()
    neg_risk: bool = False
    version: str = "v1"  # "v2": Protocol-V2 position ids (the Router), else CTF / neg-risk adapter
    note: str = ""


class PositionActionEvent(Event, frozen=True, kw_only=True):
    """An executor's report on a :class:`PositionAction` (through the door, journaled)."""

    action_id: str
    action: str = ""
    market: str = ""
    strategy: str = ""


class PositionActionSent(PositionActionEvent, frozen=True, kw_only=True, tag="position_action_sent"):
    """The transaction left: ``tx_hash`` (or the relayer's transaction id). No state change."""

    tx_hash: str = ""
    via: str = ""  # rpc | relayer | paper


class PositionActionDone(PositionActionEvent, frozen=True, kw_only=True, tag="position_action_done"):
    """Confirmed on chain: the portfolio moves now. ``amount`` is the shares merged, split or
    converted (redeem: 0, every share held); ``collateral`` the collateral the chain reported
    received (negative: spent, a split); ``gas_cost`` what the transaction cost in the gas
    token's smallest unit (POL wei; 0 through a gasless relayer), reported, not booked."""

    tx_hash: str = ""
    amount: int = 0
    collateral: int = 0
    gas_used: int = 0
    gas_cost: int = 0
    block: int = 0


class PositionActionFailed(PositionActionEvent, frozen=True, kw_only=True, tag="position_action_failed"):
    """The action did not happen (reverted, refused, or never mined): nothing moves."""

    reason: str = ""
    tx_hash: str = ""


# --------------------------------------------------------------------------------------------
# Portfolio
# --------------------------------------------------------------------------------------------


class PositionChanged(Event, frozen=True, kw_only=True, tag="position"):
    """Position of one asset after a fill or a settlement. ``cost`` is the open position's cost
    basis (an integer total; the average is never stored, only derived)."""

    asset_id: str
    market: str = ""
    size: int  # shares held (negative never happens on Polymarket; kept signed for safety)
    cost: int
    realized_pnl: int
    fees_paid: int
    rebates: int = 0
    strategy: str = ""


class PositionCorrected(Event, frozen=True, kw_only=True, tag="position_corrected"):
    """Reconciliation: the venue's position in ``asset_id`` differs from ours. The difference is
    booked to the ``reconcile`` strategy at ``price`` (the venue's average price), so the account
    holds what the venue says; the correction is visible, never silent."""

    asset_id: str
    market: str = ""
    old_size: int
    new_size: int
    price: int = 0
    reason: str = ""


class ExecutorNotice(Event, frozen=True, kw_only=True, tag="executor_notice"):
    """Something an executor reports that changes no state: reconciliation summaries, a trade
    RETRYING, a heartbeat failure, the user channel's connection."""

    executor: str
    kind: str
    detail: str = ""
    client_id: str = ""


class MarketPosition(Event, frozen=True, kw_only=True, tag="market_position"):
    """One binary market's pair view after a fill or settlement (per strategy; "" = all).

    ``pair_cost`` is avg YES + avg NO in base units, rounded up (display only: decisions compare
    by cross-multiplication); ``locked_profit`` = min(qty YES, qty NO) x (1 - pair cost) - fees;
    ``unpaired`` = qty YES - qty NO (positive: long YES)."""

    market: str
    strategy: str = ""
    qty_yes: int = 0
    qty_no: int = 0
    cost_yes: int = 0
    cost_no: int = 0
    pair_cost: int = 0
    locked_profit: int = 0
    unpaired: int = 0
    fees: int = 0


class PnLUpdate(Event, frozen=True, kw_only=True, tag="pnl"):
    """Portfolio PnL after a fill or settlement (per strategy; "" = the whole account)."""

    strategy: str = ""
    realized: int = 0  # before fees
    unrealized: int = 0
    fees: int = 0
    rebates: int = 0
    net: int = 0  # realized + unrealized - fees + rebates
    cash: int = 0  # collateral moved by fills, fees and settlements (+ the starting balance)


# --------------------------------------------------------------------------------------------
# Control and timers
# --------------------------------------------------------------------------------------------


class ControlEvent(Event, frozen=True, kw_only=True):
    origin: str = ""  # cli | api | risk | operator | ...
    reason: str = ""


class Halt(ControlEvent, frozen=True, kw_only=True, tag="halt"):
    pass


class Resume(ControlEvent, frozen=True, kw_only=True, tag="resume"):
    pass


class Reduce(ControlEvent, frozen=True, kw_only=True, tag="reduce"):
    """Enter the reducing state: only orders that shrink a position pass."""


class Flatten(ControlEvent, frozen=True, kw_only=True, tag="flatten"):
    max_slippage: int = 0  # base units of price, 0 = the risk config's default


class CancelAll(ControlEvent, frozen=True, kw_only=True, tag="cancel_all"):
    strategy: str = ""  # "" = every strategy


class SetParams(ControlEvent, frozen=True, kw_only=True, tag="set_params"):
    strategy: str
    params: dict[str, Any]


class EnableStrategy(ControlEvent, frozen=True, kw_only=True, tag="enable_strategy"):
    strategy: str
    enabled: bool = True


class ChainAction(ControlEvent, frozen=True, kw_only=True, tag="chain_action"):
    """The operator asks for an on-chain position action (``polybot merge`` / ``split`` /
    ``redeem`` / ``convert``, or the API): checked and carried out as a strategy's would be.
    ``strategy`` "" = the account (a merge or convert is shared over the strategies holding the
    shares, in name order)."""

    action: PositionActionKind
    market: str = ""
    amount: int = 0
    strategy: str = ""
    asset_ids: tuple[str, ...] = ()


class TradingStateChanged(Event, frozen=True, kw_only=True, tag="trading_state"):
    state: TradingState
    previous: TradingState
    reason: str = ""


class TimerFired(Event, frozen=True, kw_only=True, tag="timer"):
    owner: str  # strategy name (or component)
    name: str
    deadline: int  # ns, when it was due; ``ts`` is when it fired


# --------------------------------------------------------------------------------------------
# Feed health and errors
# --------------------------------------------------------------------------------------------


class FeedEvent(Event, frozen=True, kw_only=True):
    feed: str
    detail: str = ""


class FeedConnected(FeedEvent, frozen=True, kw_only=True, tag="feed_connected"):
    pass


class FeedDisconnected(FeedEvent, frozen=True, kw_only=True, tag="feed_disconnected"):
    """A connection was lost; the books of ``asset_ids`` are unhealthy until a snapshot."""

    asset_ids: tuple[str, ...] = ()


class FeedStale(FeedEvent, frozen=True, kw_only=True, tag="feed_stale"):
    asset_id: str = ""
    age_ns: int = 0


class FeedResynced(FeedEvent, frozen=True, kw_only=True, tag="feed_resynced"):
    asset_id: str = ""


class BookHealth(Event, frozen=True, kw_only=True, tag="book_health"):
    """An asset's book became healthy (hash-verified) or unhealthy, with the reason."""

    asset_id: str
    healthy: bool
    reason: str = ""


class InputDropped(Event, frozen=True, kw_only=True, tag="input_dropped"):
    """A bad input was counted and dropped (malformed frame, unknown type, bad value...)."""

    source: str
    reason: str
    detail: str = ""


class HandlerError(Event, frozen=True, kw_only=True, tag="handler_error"):
    handler: str
    event_type: str
    error: str


# --------------------------------------------------------------------------------------------
# The union and its codec
# --------------------------------------------------------------------------------------------

AnyEvent = Union[
    BookSnapshot, BookDelta, TradePrint, TickSizeChange, BestBidAsk, MarketResolved, MarketStatus,
    MarketInfo,
    GameState, OddsQuote,
    OrderIntent, OrderPlan, CancelRequest,
    RiskApproved, RiskResized, RiskRejected,
    OrderSubmitted, OrderAccepted, OrderRejected, OrderPartiallyFilled, OrderFilled,
    OrderCancelled, OrderExpired, OrderUnknown, CancelSubmitted, OrderStateError,
    OrderSigned, FillSettlement, FillReversed, OrderAdopted,
    PositionAction, PositionActionSent, PositionActionDone, PositionActionFailed,
    PositionChanged, PositionCorrected, ExecutorNotice, MarketPosition, PnLUpdate,
    Halt, Resume, Reduce, Flatten, CancelAll, SetParams, EnableStrategy, ChainAction, TradingStateChanged,
    TimerFired,
    FeedConnected, FeedDisconnected, FeedStale, FeedResynced, BookHealth,
    InputDropped, HandlerError,
]  # fmt: skip

ALL_EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__  # type: ignore[attr-defined]

#: Decodes any event (or a JSON array of events) from JSON bytes.
DECODER = msgspec.json.Decoder(AnyEvent)
LIST_DECODER = msgspec.json.Decoder(list[AnyEvent])
def enc_hook(obj: Any) -> Any:
    if isinstance(obj, int):  # int subclasses such as polybot.strategy.Units
        return int(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


#: Deterministic encoder (dict keys sorted) for the journal.
ENCODER = msgspec.json.Encoder(order="deterministic", enc_hook=enc_hook)

#: Events the kernel writes to the journal as ``{"source": "engine", "event": ...}``: its own
#: decisions and their consequences. Market data is not re-journaled (its input line is).
JOURNALED_TYPES: frozenset[type[Event]] = frozenset(
    {
        OrderIntent, OrderPlan, CancelRequest,
        RiskApproved, RiskResized, RiskRejected,
        OrderSubmitted, OrderAccepted, OrderRejected, OrderPartiallyFilled, OrderFilled,
        OrderCancelled, OrderExpired, OrderUnknown, CancelSubmitted, OrderStateError,
        PositionChanged, MarketPosition, PnLUpdate, TradingStateChanged, TimerFired, HandlerError,
        PositionAction, PositionActionSent, PositionActionDone, PositionActionFailed,
    }
)  # fmt: skip


def type_name(cls: type[Event]) -> str:
    """The wire tag of an event class (``BookDelta`` -> ``"book_delta"``)."""
    return cls.__struct_config__.tag  # type: ignore[return-value]


TAG_TO_TYPE: dict[str, type[Event]] = {type_name(c): c for c in ALL_EVENT_TYPES}
