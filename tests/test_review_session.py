"""Review of the engine changes since 6142197 (risk speed work, neg-risk group caps, kernel,
bus): regression tests for the bugs found, each failing before its fix."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.events import (
    BookSnapshot,
    CancelSubmitted,
    Event,
    FeeSchedule,
    MarketInfo,
    MarketResolved,
    OrderAccepted,
    OrderFilled,
    OrderIntent,
)
from polybot.execution import RecordedExecutor
from polybot.kernel import Kernel
from polybot.risk import PassThrough, RiskChain, RiskContext
from polybot.risk.chain import reject
from polybot.risk.limits import LossLimits
from session_ops import feed, submit, venue
from polybot.strategy import Strategy

U = 1_000_000
NS = 1_000_000_000
DAY = 86_400 * NS
T0 = 1_705_320_000 * NS  # 2024-01-15 12:00:00 UTC


def p(x: float) -> int:
    return round(x * U)


def intent(asset: str = "y1", side: str = "BUY", price: float = 0.40, size: float = 10, **kw: Any) -> OrderIntent:
    return OrderIntent(strategy="", asset_id=asset, side=side, price=p(price), size=p(size), **kw)  # type: ignore[arg-type]


# ============================================================================ risk chain


@attrs.define
class Refuse:
    name: str = "refuse"

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Any:
        return reject(self.name, "no")


@attrs.define
class Forgetful:
    """A third-party validator that forgets to return a Decision (returns None)."""

    name: str = "forgetful"
    calls: int = 0

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Any:
        self.calls += 1
        return None


def test_a_validator_replaced_in_place_after_first_use_is_the_one_that_runs() -> None:
    """The chain compiles its validators once per list; replacing one in place (same length)
    must not leave the old one running."""
    k = Kernel(risk=RiskChain([PassThrough()]))
    it = intent()
    assert k.risk.check_intent(it, RiskContext(k, "s"))[0].action == "approve"
    k.risk.validators[0] = Refuse()
    assert k.risk.check_intent(it, RiskContext(k, "s"))[0].action == "reject"
    k.risk.validators[0] = PassThrough()
    assert k.risk.check_intent(it, RiskContext(k, "s"))[0].action == "approve"
    k.risk.overrides["t"] = [PassThrough()]
    assert k.risk.check_intent(it, RiskContext(k, "t"))[0].action == "approve"
    k.risk.overrides["t"][0] = Refuse()
    assert k.risk.check_intent(it, RiskContext(k, "t"))[0].action == "reject"


def test_a_validator_returning_none_is_called_once_like_the_loop_did() -> None:
    """The straight-line chain hands its first non-APPROVE verdict to the loop; a verdict of
    None must not make the loop call the validator a second time (a stateful validator would
    count the intent twice)."""
    f = Forgetful()
    k = Kernel(risk=RiskChain([PassThrough(), f]))
    d, _ = k.risk.check_intent(intent(), RiskContext(k, "s"))
    assert d.action == "reject" and "not a Decision" in d.reason
    assert f.calls == 1


# ============================================================================ kernel


class Quoter(Strategy):
    name = "quoter"

    def on_start(self) -> None:
        self.ctx.subscribe(BookSnapshot, self.on_book)

    def on_book(self, ev: BookSnapshot) -> None:
        if not self.ctx.open_orders():
            self.ctx.submit(intent(price=0.40))


def quoting_kernel() -> Kernel:
    k = Kernel(executor=RecordedExecutor("rec"), verify_books=False)
    k.add_strategy(Quoter, "a", {})
    k.start()
    return k


def test_restoring_a_disabled_strategy_sends_no_cancel() -> None:
    """A snapshot of a disabled strategy whose order is open again (the venue's late accept
    after the disable's cancel) restores as it was: restoring is not disabling, so it emits no
    cancel and hands nothing to the executor (in recovery the executor is still the live one
    and no journal is attached yet: an unjournaled venue request)."""
    k = quoting_kernel()
    feed(k, T0, BookSnapshot(asset_id="y1", market="m1", bids=((p(0.39), p(100)),), asks=((p(0.41), p(100)),)))
    (o,) = k.orders.open_orders("a")
    k.process(T0 + 1, "control", b'{"type":"enable_strategy","strategy":"a","enabled":false}')
    assert k.orders.get(o.client_id).state == "cancel_pending"
    feed(k, T0 + 2, OrderAccepted(client_id=o.client_id, asset_id="y1"), source="exec.rec")  # a late ack
    assert k.orders.get(o.client_id).state == "accepted"
    st = json.loads(json.dumps(k.to_state()))

    k2 = quoting_kernel()
    cancels: list[CancelSubmitted] = []
    k2.bus.subscribe(CancelSubmitted, cancels.append)
    k2.restore(st)
    assert cancels == []
    assert k2.orders.get(o.client_id).state == "accepted"
    assert not k2.strategies["a"].enabled
    assert k2.summary_state() == k.summary_state()


# ============================================================================ loss limits


def test_loss_limits_observe_the_net_a_settlement_left_not_the_one_before() -> None:
    """A settlement moves the net without a fill or a book change. The check after it must not
    record the net from before (the next day's base would start from it: here a day-2 loss of 60
    from +60 would go unnoticed because the base was left at the pre-settlement -2)."""
    k = Kernel(executor=RecordedExecutor("rec"), verify_books=False,
               risk=RiskChain([LossLimits(max_daily_loss="50")]))  # fmt: skip
    ll = k.risk.validators[0]
    feed(k, T0, MarketInfo(market="m1", asset_ids=("y1", "n1"), outcomes=("Yes", "No")),
         MarketInfo(market="m2", asset_ids=("y2", "n2"), outcomes=("Yes", "No")),
         *[BookSnapshot(asset_id=a, market=m, bids=((p(0.38), p(1000)),), asks=((p(0.42), p(1000)),))
           for m, a in (("m1", "y1"), ("m1", "n1"), ("m2", "y2"), ("m2", "n2"))])  # fmt: skip
    d = k.submit("s", intent("y1", price=0.40, size=100))
    feed(k, T0 + 1, OrderFilled(client_id=d.client_ids[0], asset_id="y1", trade_id="t1", side="BUY", price=p(0.40),
                                size=p(100), liquidity="taker"), source="exec.rec")  # fmt: skip
    k.submit("s", intent("y2", price=0.01, size=100))  # a check: net 38 - 40 = -2
    assert ll.track("").last == -p(2)
    feed(k, T0 + 2, MarketResolved(market="m1", asset_ids=("y1", "n1"), winning_asset_id="y1"))
    assert ll.track("").last == p(60)  # observed from the PnLUpdate
    k.submit("s", intent("y2", price=0.01, size=100))  # same day, no fill, no book change
    assert ll.track("").last == p(60)
    # day 2: buy YES of m2 at 0.60 x 100 and lose it all: the net falls from +60 to about 0
    t = T0 + DAY
    d = k.submit("s", intent("y2", price=0.60, size=100))
    feed(k, t, OrderFilled(client_id=d.client_ids[0], asset_id="y2", trade_id="t2", side="BUY", price=p(0.60),
                           size=p(100), liquidity="taker"), source="exec.rec")  # fmt: skip
    assert ll.track("").base == p(60)
    feed(k, t + 1, MarketResolved(market="m2", asset_ids=("y2", "n2"), winning_asset_id="n2"))
    assert ll.track("").tripped and k.trading_state == "halted"


# ============================================================================ properties


@attrs.define(eq=False)
class Scripted:
    """A validator with a fixed verdict that logs its calls."""

    name: str
    verdict: str
    log: list[tuple[str, int]]
    skip_reducing: bool = False
    size: int = 0

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Any:
        from polybot.risk.chain import APPROVE, Decision

        self.log.append((self.name, intent.size))
        v = self.verdict
        if v == "approve":
            return APPROVE
        if v == "approve_copy":
            return Decision("approve", self.name)
        if v == "resize":
            return Decision("resize", self.name, "smaller", self.size)
        if v == "reject":
            return reject(self.name, "no")
        if v == "raise":
            raise RuntimeError("boom")
        if v == "odd_action":
            return Decision("odd", self.name)  # type: ignore[arg-type]
        return None if v == "none" else "yes"


def loop_reference(chain: RiskChain, intent: OrderIntent, ctx: RiskContext) -> tuple[Any, OrderIntent]:
    """RiskChain.check_intent as it was before the straight line (6142197): one loop."""
    import msgspec

    from polybot.risk.chain import APPROVE, LOT, Decision, reduces

    resized = None
    exempt = intent.reduce_only and reduces(intent, ctx)
    for v in chain.chain_for(ctx.strategy):
        if exempt and getattr(v, "skip_reducing", False):
            continue
        try:
            d = v.check(intent, ctx)
        except Exception as exc:  # noqa: BLE001
            return reject(v.name, f"validator raised {type(exc).__name__}: {exc}"), intent
        if not isinstance(d, Decision):
            return reject(v.name, f"validator returned {type(d).__name__}, not a Decision"), intent
        if d.action == "reject":
            return d, intent
        if d.action == "resize":
            size = (min(d.size, intent.size) // LOT) * LOT
            if size <= 0:
                return reject(d.validator, f"resized to nothing: {d.reason}"), intent
            if size < intent.size:
                intent = msgspec.structs.replace(intent, size=size)
                resized = Decision("resize", d.validator, d.reason, size)
    return (resized or APPROVE), intent


VERDICTS = ["approve", "approve", "approve", "approve_copy", "resize", "reject", "raise", "none", "string", "odd_action"]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(specs=st.lists(st.tuples(st.sampled_from(VERDICTS), st.booleans(), st.integers(0, 30)), max_size=7),
       override=st.booleans(), reduce_only=st.booleans(), size=st.integers(1, 20), mutate=st.integers(-1, 6))  # fmt: skip
def test_property_the_straight_line_chain_is_the_loop(specs: list[tuple[str, bool, int]], override: bool,
                                                      reduce_only: bool, size: int, mutate: int) -> None:  # fmt: skip
    """Whatever the validators return (APPROVE, another approve, a resize, a rejection, an
    exception, None, not a Decision), with reduce-only exemptions and per-strategy overrides,
    and after a validator is replaced in place: the same decision, the same final intent and
    the same validator calls, in the same order, as the plain loop."""
    log: list[tuple[str, int]] = []
    vals = [Scripted(f"v{j}", v, log, skip, n * U) for j, (v, skip, n) in enumerate(specs)]
    chain = RiskChain([], {"s": vals}) if override else RiskChain(vals)
    k = Kernel(executor=RecordedExecutor("rec"), risk=chain, verify_books=False)
    d = k.submit("s", intent("y1", price=0.40, size=50))  # a position to reduce (the chain may refuse)
    if d.approved:
        feed(k, T0, OrderFilled(client_id=d.client_ids[0], asset_id="y1", trade_id="t", side="BUY", price=p(0.40),
                                size=d.size or p(50), liquidity="taker"), source="exec.rec")  # fmt: skip
    it = intent("y1", side="SELL" if reduce_only else "BUY", size=size, reduce_only=reduce_only, client_id="c")
    for _ in range(2):  # compiled on first use, then reused
        log.clear()
        got = chain.check_intent(it, RiskContext(k, "s"))
        got_log = list(log)
        log.clear()
        want = loop_reference(chain, it, RiskContext(k, "s"))
        assert (got, got_log) == (want, list(log))
    if vals and mutate >= 0:
        chain.chain_for("s")[mutate % len(vals)] = Scripted("new", "reject", log)
        log.clear()
        got = chain.check_intent(it, RiskContext(k, "s"))
        got_log = list(log)
        log.clear()
        assert (got, got_log) == (loop_reference(chain, it, RiskContext(k, "s")), list(log))


SCHED = FeeSchedule(rate_ppm=70_000, exponent=1)
LB_MARKETS = {
    "m1": MarketInfo(market="m1", asset_ids=("y1", "n1"), outcomes=("Yes", "No"), event_id="e1", fees=SCHED),
    "m2": MarketInfo(market="m2", asset_ids=("y2", "n2"), outcomes=("Yes", "No"), event_id="e1", neg_risk=True,
                     neg_risk_market_id="nr"),
    "m3": MarketInfo(market="m3", asset_ids=("a3", "b3", "c3"), outcomes=("A", "B", "C"), neg_risk_augmented=True),
}  # fmt: skip
LB_ASSETS = ("y1", "n1", "y2", "n2", "a3", "b3", "c3", "zz", "ww")  # zz, ww: uncatalogued until m4 lists them
LB_SCOPES = ("", "a", "b")


def check_books(k: Kernel, markets: dict[str, MarketInfo]) -> None:
    """LossBook (vectors moved in place, stale ones recomputed when read) against a fresh
    market_outcome_losses, and the store's open share totals against its open orders."""
    from polybot.risk.chain import market_outcome_losses

    lb = k.losses
    for scope, per in lb.vecs.items():  # the raw state, before any read refreshes it
        for m, vec in per.items():
            if m not in lb.dirty.get(scope, ()):
                assert vec == market_outcome_losses(k, m, scope), (scope, m)
    listed = {a for i in markets.values() for a in i.asset_ids}
    everything = [(m, i.asset_ids) for m, i in markets.items()] + [(a, (a,)) for a in ("zz", "ww") if a not in listed]
    pf, ex = k.portfolio, k.exposure
    for scope in LB_SCOPES:
        total = 0
        for m, assets in everything:
            pos = [pf.by_strategy.get((scope, a)) if scope else pf.positions.get(a) for a in assets]
            live = any(x is not None and x.size for x in pos) or any((scope, a) in ex.buys or (scope, a) in ex.sells
                                                                      for a in assets)  # fmt: skip
            fresh = market_outcome_losses(k, m, scope)
            want = max(fresh) if live and max(fresh) > 0 else 0
            if m not in lb.dirty.get(scope, ()):
                assert lb.by_scope.get(scope, {}).get(m, 0) == want, (scope, m)
            assert lb.loss(scope, m) == want and lb.vector(scope, m) == fresh, (scope, m)
            assert lb.bound(scope) >= max(fresh), (scope, m)  # the caps' shortcut bound covers it
            total += want
        assert lb.total(scope) == total, scope
        assert lb.bound(scope) >= total, scope
    qty: dict[tuple[str, str, str], int] = {}
    for o in k.orders.open_orders():
        for s_ in {"", o.strategy}:
            qty[(s_, o.asset_id, o.intent.side)] = qty.get((s_, o.asset_id, o.intent.side), 0) + o.remaining
    assert k.orders.open_qty == {key: v for key, v in qty.items() if v}
    for scope in LB_SCOPES:  # the position caps' shortcut totals
        assert k.orders.open_total.get(scope, 0) == sum(v for (s_, _a, _side), v in qty.items() if s_ == scope), scope
        sizes = (p.size for (s_, _a), p in pf.by_strategy.items() if s_ == scope) if scope else (
            p.size for p in pf.positions.values())  # fmt: skip
        assert lb.pos_shares.get(scope, 0) == sum(abs(x) for x in sizes), scope


lb_op = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(["a", "b", ""]), st.sampled_from(LB_ASSETS),
              st.sampled_from(["BUY", "BUY", "SELL"]), st.integers(1, 99), st.integers(1, 500)),
    st.tuples(st.just("plan"), st.sampled_from(["a", "b"]), st.lists(st.tuples(st.sampled_from(LB_ASSETS),
              st.sampled_from(["BUY", "SELL"]), st.integers(1, 99)), min_size=1, max_size=3), st.integers(1, 300)),
    st.tuples(st.just("venue"), st.integers(0, 99), st.sampled_from(["fill", "fill", "cancel", "ack_cancel", "expire",
              "reject", "accept"]), st.integers(1, 600), st.booleans()),
    st.tuples(st.just("resolve"), st.sampled_from(sorted(LB_MARKETS)), st.integers(0, 2)),
    st.tuples(st.just("catalog"), st.sampled_from([*sorted(LB_MARKETS), "m4"]), st.booleans(), st.booleans()),
    st.tuples(st.just("restore")),
    st.tuples(st.just("read"), st.booleans()),
)  # fmt: skip


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(ops=st.lists(lb_op, min_size=10, max_size=50))
def test_property_loss_book_and_open_shares_match_a_fresh_recomputation(ops: list[tuple[Any, ...]]) -> None:
    """Reserve, partial and full fills (fees, over- and late fills), cancels, expiries,
    rejections, settlements, catalog changes (fees, outcome sets, an uncatalogued asset joining
    a market) and snapshot restores, in any order, with the books read only now and then."""
    import msgspec

    from polybot.risk.limits import NotionalCaps, PositionCaps

    def new_kernel() -> Kernel:
        return Kernel(executor=RecordedExecutor("rec"), verify_books=False,
                      risk=RiskChain([NotionalCaps(per_market="1000", per_group="1000", total="5000"),
                                      PositionCaps(max_shares="1000")]))  # fmt: skip

    markets = dict(LB_MARKETS)
    k = new_kernel()
    t = T0
    feed(k, t, *markets.values())
    cids: list[str] = []
    for n, op in enumerate(ops):
        t += NS
        if op[0] == "submit":
            _, strat, asset, side, ticks, lots = op
            cids += submit(k, strat, [(asset, side, ticks * 10_000)], lots, plan=False)
        elif op[0] == "plan":
            _, strat, legs, lots = op
            cids += submit(k, strat, [(a, s_, ticks * 10_000) for a, s_, ticks in legs], lots, plan=True)
        elif op[0] == "venue" and cids:
            _, j, what, lots, taker = op
            venue(k, t, cids[j % len(cids)], what, lots, liquidity="taker" if taker else "maker",
                  fee=1_230 if taker else 0)  # fmt: skip
        elif op[0] == "resolve":
            info = markets[op[1]]
            feed(k, t, MarketResolved(market=info.market, asset_ids=info.asset_ids,
                                      winning_asset_id=info.asset_ids[op[2] % len(info.asset_ids)]))  # fmt: skip
        elif op[0] == "catalog":
            _, m, aug, fees = op
            base = markets.get(m) or MarketInfo(market="m4", asset_ids=("zz", "ww"), outcomes=("Yes", "No"))
            markets[m] = msgspec.structs.replace(base, neg_risk_augmented=aug, fees=SCHED if fees else None)
            feed(k, t, markets[m])
        elif op[0] == "restore":
            st_ = json.loads(json.dumps(k.to_state()))
            k = new_kernel()
            k.restore(st_)
        elif op[0] == "read" and op[1]:
            check_books(k, markets)
    check_books(k, markets)


class RefusingJournal:
    """A journal whose writes fail (a full disk), then work again."""

    def __init__(self) -> None:
        self.fail = True

    def write_event(self, ev: Event) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")

    def sync(self) -> None:
        pass


def test_a_cancel_the_journal_refused_can_be_sent_again() -> None:
    """The kernel remembers cancels whose CancelSubmitted is queued, to send one per order; a
    cancel whose event never went out (the journal write raised, the daemon carries on) must
    not be remembered, or the order could never be cancelled again."""
    k = Kernel(executor=RecordedExecutor("rec"), verify_books=False)
    d = k.submit("s", intent("y1", price=0.40, size=10))
    cid = d.client_ids[0]
    j = k.journal = RefusingJournal()  # type: ignore[assignment]
    with pytest.raises(OSError):
        k.cancel("s", cid)
    j.fail = False
    assert k.cancel("s", cid) is True
    assert k.orders.get(cid).state == "cancel_pending"


def test_restoring_into_a_kernel_that_already_computed_losses() -> None:
    """Exposure.restore drops every reservation silently and re-reserves the snapshot's, calling
    the loss book's hook for each against vectors built from the catalog before the restore (a
    market of 2 outcomes where the snapshot's has 3: IndexError). A bulk load tells the hook
    nothing; the kernel rebuilds the loss book right after."""
    from polybot.risk.limits import NotionalCaps

    def new_kernel(*infos: MarketInfo) -> Kernel:
        k = Kernel(executor=RecordedExecutor("rec"), verify_books=False, risk=RiskChain([NotionalCaps(per_market="1000")]))
        feed(k, T0, *infos)
        return k

    a = new_kernel(MarketInfo(market="M", asset_ids=("a", "b", "c"), outcomes=("A", "B", "C")))
    assert a.submit("s", intent("c", side="SELL", price=0.40, size=10)).approved
    st = json.loads(json.dumps(a.to_state()))
    b = new_kernel(MarketInfo(market="M", asset_ids=("a", "b"), outcomes=("A", "B")))
    assert b.submit("s", intent("a", price=0.40, size=10)).approved  # the loss book holds M's 2-vector
    b.restore(st)
    check_books(b, {"M": MarketInfo(market="M", asset_ids=("a", "b", "c"), outcomes=("A", "B", "C"))})
