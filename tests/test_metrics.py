"""Prometheus metrics: the kernel's stage timing (exact accounting with a fake clock, off by
default, the same journal on or off), the text exposition read back with prometheus_client's own
parser (values equal the engine's state), the histogram's properties, label escaping, and the
Grafana dashboard naming only metrics that exist."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from polybot import metrics
from polybot.config import load_config, parse_config
from polybot.events import (
    ENCODER,
    BookSnapshot,
    FeeSchedule,
    FeedConnected,
    FeedDisconnected,
    Halt,
    MarketInfo,
    OrderIntent,
    TradePrint,
    type_name,
)
from polybot.execution import NullExecutor
from polybot.journal import JournalWriter
from polybot.kernel import Kernel
from polybot.metrics import LATENCY_BOUNDS_NS, STAGES, Histogram, StageTiming, escape_label, render_metrics
from polybot.monitor import Monitor
from polybot.replay import replay
from polybot.risk import APPROVE, RiskChain, TradingStateValidator
from polybot.strategy import Strategy
from polybot.wiring import build_executor, build_kernel

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "docs" / "grafana" / "polybot.json"
YES, NO, M = "yes-token", "no-token", "m1"
YES2, NO2, M2 = "yes-2", "no-2", "m2"
U = 1_000_000
MS = 1_000_000  # ns
HOSTILE = 'evil "quoted" \\back\\slash\nnew line'


class Mirror(Strategy):
    """Takes what each trade print shows: a FAK BUY of the print's size at the print's price."""

    name = "mirror"

    def on_start(self) -> None:
        self.ctx.subscribe(TradePrint, self.on_print)

    def on_print(self, ev: TradePrint) -> None:
        self.ctx.submit(OrderIntent(strategy=self.id, asset_id=ev.asset_id, market=ev.market, side="BUY",
                                    price=ev.price, size=ev.size, tif="FAK", kind="market"))  # fmt: skip


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, Any], sample: str, **labels: str) -> float:
    """The value of the one sample named ``sample`` with exactly ``labels``."""
    fam = fams[re.sub(r"_(total|bucket|sum|count)$", "", sample)]
    hits = [s.value for s in fam.samples if s.name == sample and s.labels == labels]
    assert len(hits) == 1, (sample, labels, fam.samples)
    return hits[0]


def bucket_series(fams: dict[str, Any], name: str, **labels: str) -> list[tuple[float, float]]:
    out = [(float(s.labels["le"]), s.value) for s in fams[name].samples if s.name == f"{name}_bucket"
           and {k: v for k, v in s.labels.items() if k != "le"} == labels]  # fmt: skip
    return sorted(out)


# ------------------------------------------------------------------------------ a session


class Session:
    """A kernel as the daemon builds one (config, paper executor, risk chain, journal), with a
    Mirror strategy, a Monitor, and stage timing on from the first input."""

    def __init__(self, tmp_path: Path, strategy: str = "mirror", timing: bool = True) -> None:
        cfg = parse_config({
            "executor": {"kind": "paper", "params": {"cash": "1000"}},
            "risk": {"chain": ["trading_state", "notional_caps"],
                     "validators": {"notional_caps": {"max_open_positions": 1, "per_order": "20"}}},
        })  # fmt: skip
        self.journal_path = tmp_path / f"{strategy.encode().hex()[:16]}.jsonl"
        self.k = build_kernel(cfg, executor=build_executor(cfg), journal=JournalWriter(self.journal_path, fsync="never"))
        self.k.add_strategy(Mirror, strategy, {})
        self.monitor = Monitor(self.k)
        if timing:
            self.k.timing = StageTiming()
        self.k.start()
        self.t = 1_000 * MS
        fees = FeeSchedule(rate_ppm=70_000, exponent=1, rebate_ppm=200_000)
        self.feed(MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No"), fees=fees),
                  MarketInfo(market=M2, asset_ids=(YES2, NO2), outcomes=("Yes", "No"), fees=fees))

    def raw(self, source: str, msg: bytes) -> None:
        self.t += MS
        self.k.process(self.t, source, msg)

    def feed(self, *evs: Any) -> None:
        self.raw("events", ENCODER.encode(list(evs)))

    def books(self) -> None:
        self.feed(BookSnapshot(asset_id=YES, market=M, bids=((480_000, 100 * U),), asks=((500_000, 10 * U), (510_000, 20 * U)),
                               tick_size=10_000),
                  BookSnapshot(asset_id=NO, market=M, bids=((490_000, 20 * U), (500_000, 10 * U)), asks=((520_000, 100 * U),),
                               tick_size=10_000))  # fmt: skip

    def render(self, extra: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        text = render_metrics(self.k, self.monitor, extra)
        return text, families(text)


def run_session(tmp_path: Path, strategy: str = "mirror") -> Session:
    s = Session(tmp_path, strategy)
    s.feed(FeedConnected(feed="market"), FeedConnected(feed="sports"))
    s.books()
    s.raw("events", b"{not json")  # malformed: dropped, counted, journaled as a string
    s.feed(TradePrint(asset_id=YES, market=M, price=500_000, size=10 * U))  # the strategy takes 10 @ 0.50: a fill
    s.feed(TradePrint(asset_id=YES2, market=M2, price=500_000, size=10 * U))  # a second position: risk rejects
    s.feed(FeedDisconnected(feed="sports", detail="test"))
    return s


def rich_session(tmp_path: Path) -> Session:
    """:func:`run_session`, then a resize, a partial fill (the rest cancelled) and an executor
    rejection: every labelled family has samples."""
    s = run_session(tmp_path)
    s.feed(TradePrint(asset_id=YES, market=M, price=510_000, size=100 * U))  # resized to the 20 pUSD cap, takes 20
    s.feed(TradePrint(asset_id=YES, market=M, price=490_000, size=10 * U))  # nothing to take: the executor rejects
    st_ = s.k.stats
    assert (st_.orders, st_.fills) == (3, 2)
    return s


def test_rendered_values_equal_the_engine_state(tmp_path: Path) -> None:
    s = run_session(tmp_path)
    k, mon = s.k, s.monitor
    _text, fams = s.render()
    st_ = k.stats

    # the door
    assert {smp.labels["source"]: smp.value for smp in fams["polybot_inputs"].samples} == dict(st_.by_source)
    assert sum(smp.value for smp in fams["polybot_inputs"].samples) == st_.inputs == 7
    assert value(fams, "polybot_dropped_inputs_total", source="events", reason="malformed") == 1
    assert st_.drop_reasons["events:malformed"] == 1
    assert value(fams, "polybot_decoded_events_total") == st_.events
    for cls, n in mon.events_by_type.items():
        assert value(fams, "polybot_events_total", type=type_name(cls)) == n
    assert value(fams, "polybot_events_total", type="input_dropped") == 1

    # stage latency: decode, journal and strategy once per input; risk per intent, submit per approval
    assert value(fams, "polybot_stage_timing_enabled") == 1
    for stage, n in (("decode", st_.inputs), ("journal", st_.inputs), ("strategy", st_.inputs), ("risk", 2), ("submit", 1)):
        assert value(fams, "polybot_stage_latency_seconds_count", stage=stage) == n, stage
        series = bucket_series(fams, "polybot_stage_latency_seconds", stage=stage)
        assert [le for le, _ in series] == [b / 1e9 for b in LATENCY_BOUNDS_NS] + [math.inf]
        counts = [c for _, c in series]
        assert counts == sorted(counts) and counts[-1] == n  # cumulative, ending at +Inf = _count
        h = k.timing.histograms()[stage]  # type: ignore[union-attr]
        assert value(fams, "polybot_stage_latency_seconds_sum", stage=stage) == h.sum / 1e9
        assert h.count == n
    assert value(fams, "polybot_stage_latency_seconds_sum", stage="decode") > 0

    # orders, fills, risk
    assert st_.intents == 2 and st_.orders == 1 and st_.fills == 1 and st_.rejections == 1
    assert value(fams, "polybot_intents_total") == 2
    assert value(fams, "polybot_orders_submitted_total", strategy="mirror") == 1
    assert value(fams, "polybot_fills_total", strategy="mirror", liquidity="taker") == 1
    assert value(fams, "polybot_fill_volume_shares_total", strategy="mirror") == 10.0
    assert value(fams, "polybot_risk_rejections_total", validator="notional_caps", strategy="mirror") == 1
    assert mon.risk_rejects[("notional_caps", "mirror")] == 1
    assert value(fams, "polybot_orders_terminal_total", state="cancelled") == 0
    assert value(fams, "polybot_open_orders", strategy="mirror") == 0

    # money: floats of the exact base units
    pf = k.portfolio
    marks = pf.marks(k.books)
    total = pf.pnl("", marks)
    own = pf.pnl("mirror", marks)
    assert total.fees > 0 and total.unrealized != 0
    for part in ("net", "realized", "unrealized", "fees", "rebates"):
        assert value(fams, f"polybot_pnl_{part}_dollars") == getattr(total, part) / U, part
        assert value(fams, f"polybot_strategy_pnl_{part}_dollars", strategy="mirror") == getattr(own, part) / U, part
    assert value(fams, "polybot_pnl_net_dollars") == pytest.approx(
        (total.realized + total.unrealized - total.fees + total.rebates) / U)
    assert value(fams, "polybot_cash_dollars") == pf.cash / U
    assert value(fams, "polybot_exposure_dollars") == k.exposure.total / U
    assert value(fams, "polybot_position_value_dollars") == pf.mark_value(marks) / U == 4.8  # 10 YES at the 0.48 bid

    # state and feeds
    assert value(fams, "polybot_trading_state", state="active") == 1
    assert value(fams, "polybot_trading_state", state="halted") == 0
    assert value(fams, "polybot_feed_up", feed="market") == 1
    assert value(fams, "polybot_feed_up", feed="sports") == 0
    assert value(fams, "polybot_feed_disconnects_total", feed="sports") == 1
    assert value(fams, "polybot_handler_errors_total") == k.bus.handler_errors == 0
    assert value(fams, "polybot_books") == 2 and value(fams, "polybot_books_unhealthy") == 0
    assert value(fams, "polybot_uptime_seconds") >= 0

    # a halt, a reconnect and the resync that follows
    s.raw("control", ENCODER.encode(Halt(reason="operator")))
    s.feed(FeedDisconnected(feed="market", asset_ids=(YES, NO)))
    _t, fams = s.render()
    assert value(fams, "polybot_trading_state", state="halted") == 1
    assert value(fams, "polybot_trading_state", state="active") == 0
    assert value(fams, "polybot_books_unhealthy") == 2
    assert value(fams, "polybot_feed_up", feed="market") == 0
    s.feed(FeedConnected(feed="market"))
    s.books()
    _t, fams = s.render()
    assert value(fams, "polybot_books_unhealthy") == 0
    assert value(fams, "polybot_book_resyncs_total") == k.integrity.summary()["total"]["resyncs"] == 2
    assert value(fams, "polybot_book_unhealthy_transitions_total") == 2
    assert value(fams, "polybot_feed_up", feed="market") == 1
    for result in ("passed", "failed", "unsettled"):
        assert value(fams, "polybot_book_hash_checks_total", result=result) == k.integrity.summary()["total"].get(result, 0)
    assert value(fams, "polybot_stage_latency_seconds_count", stage="decode") == k.stats.inputs


def test_every_family_has_help_and_type_and_names_are_unique(tmp_path: Path) -> None:
    text, fams = run_session(tmp_path).render()
    heads = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    helps = re.findall(r"^# HELP (\S+) ", text, re.M)
    assert [n for n, _ in heads] == helps and len(set(helps)) == len(helps)
    for name, typ in heads:
        assert name.startswith("polybot_")
        assert name.endswith("_total") == (typ == "counter"), name
    for line in text.splitlines():
        assert line.startswith(("# HELP polybot_", "# TYPE polybot_", "polybot_")), line
    assert text.endswith("\n")


def test_extra_gauges_and_their_names(tmp_path: Path) -> None:
    s = Session(tmp_path)
    _t, fams = s.render({"inbound_queue_depth": ("Records waiting for the kernel.", 3), "polybot_journal_bytes": 1234})
    assert value(fams, "polybot_inbound_queue_depth") == 3
    assert fams["polybot_inbound_queue_depth"].documentation == "Records waiting for the kernel."
    assert value(fams, "polybot_journal_bytes") == 1234
    with pytest.raises(ValueError, match="written twice"):
        s.render({"books": 1})
    with pytest.raises(ValueError, match="bad metric name"):
        s.render({"queue depth": 1})
    with pytest.raises(TypeError, match="must be a number"):
        s.render({"queue_depth": "3"})


# ------------------------------------------------------------------------------ escaping


def test_hostile_strategy_name_is_escaped_and_round_trips(tmp_path: Path) -> None:
    s = run_session(tmp_path, strategy=HOSTILE)
    text, fams = s.render()
    assert value(fams, "polybot_orders_submitted_total", strategy=HOSTILE) == 1
    assert value(fams, "polybot_fills_total", strategy=HOSTILE, liquidity="taker") == 1
    assert value(fams, "polybot_risk_rejections_total", validator="notional_caps", strategy=HOSTILE) == 1
    assert value(fams, "polybot_strategy_pnl_net_dollars", strategy=HOSTILE) == s.k.portfolio.pnl(HOSTILE, s.k.portfolio.marks(s.k.books)).net / U
    esc = 'evil \\"quoted\\" \\\\back\\\\slash\\nnew line'
    assert escape_label(HOSTILE) == esc
    assert f'polybot_orders_submitted_total{{strategy="{esc}"}} 1\n' in text
    for line in text.splitlines():  # no raw newline split a sample
        assert line.startswith(("# ", "polybot_")), line


def test_help_text_is_escaped() -> None:
    w = metrics._Writer()
    w.family("x", "gauge", "back\\slash\nnext", 1)
    assert w.text() == "# HELP polybot_x back\\\\slash\\nnext\n# TYPE polybot_x gauge\npolybot_x 1\n"
    assert families(w.text())["polybot_x"].documentation == "back\\slash\nnext"


def test_value_formatting() -> None:
    f = metrics.fmt_value
    assert [f(3), f(True), f(0.5), f(2.0), f(1e-06), f(math.inf), f(-math.inf)] == ["3", "1", "0.5", "2.0", "1e-06", "+Inf", "-Inf"]
    assert f(math.nan) == "NaN"
    assert float(f(0.1 + 0.2)) == 0.1 + 0.2  # shortest exact form


# ------------------------------------------------------------------------------ histogram


def test_latency_buckets_are_1_2_5_from_a_microsecond_to_ten_seconds() -> None:
    b = LATENCY_BOUNDS_NS
    assert b[0] == 1_000 and b[-1] == 10_000_000_000 and len(b) == 22
    assert b[:6] == (1_000, 2_500, 5_000, 10_000, 25_000, 50_000)
    assert list(b) == sorted(set(b))


def test_histogram_bucket_edges_are_inclusive() -> None:
    h = Histogram((10, 20))
    for v in (10, 11, 20, 21, 0):
        h.observe(v)
    assert h.cumulative() == [(10, 2), (20, 4), (math.inf, 5)]
    with pytest.raises(ValueError):
        Histogram((2, 1))
    with pytest.raises(ValueError):
        Histogram(())


bounds_st = st.lists(st.integers(-10**7, 10**7), min_size=1, max_size=25, unique=True).map(sorted)


@settings(max_examples=200, deadline=None)
@given(bounds=bounds_st, values=st.lists(st.integers(-2 * 10**7, 2 * 10**7), max_size=300))
def test_histogram_properties(bounds: list[int], values: list[int]) -> None:
    h = Histogram(bounds)
    for v in values:
        h.observe(v)
    cum = h.cumulative()
    assert [le for le, _ in cum] == [*bounds, math.inf]
    ns = [n for _, n in cum]
    assert all(a <= b for a, b in zip(ns, ns[1:]))  # cumulative buckets are monotone
    assert ns[-1] == h.count == len(values)  # +Inf holds every observation
    assert h.sum == sum(values)
    for le, n in cum:  # each bucket counts exactly the observations <= its bound
        assert n == sum(1 for v in values if v <= le)
    # and the same through the exposition and prometheus_client's parser
    w = metrics._Writer()
    w.histogram("h", "test", [((("stage", "x"),), h)])
    fam = families(w.text())["polybot_h"]
    buckets = [s.value for s in fam.samples if s.name == "polybot_h_bucket"]
    assert buckets == ns
    assert [s.value for s in fam.samples if s.name == "polybot_h_count"] == [len(values)]
    assert [s.value for s in fam.samples if s.name == "polybot_h_sum"] == [float(sum(values))]


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(0, 1e12, allow_nan=False), max_size=100))
def test_histogram_float_observations(values: list[float]) -> None:
    h = Histogram(LATENCY_BOUNDS_NS)
    for v in values:
        h.observe(v)
    assert h.count == len(values)
    assert h.sum == pytest.approx(math.fsum(values), rel=1e-9, abs=1e-6)


# ------------------------------------------------------------------------------ stage accounting


class FakeClock:
    """Stands in for perf_counter_ns: time moves only when a test component says so."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now

    def spend(self, ns: int) -> None:
        self.now += ns


class SlowValidator:
    name = "slow"

    def __init__(self, clock: FakeClock, ns: int) -> None:
        self.clock, self.ns = clock, ns

    def check(self, intent: OrderIntent, ctx: Any) -> Any:
        self.clock.spend(self.ns)
        return APPROVE


class SlowExecutor(NullExecutor):
    def __init__(self, clock: FakeClock, ns: int) -> None:
        super().__init__()
        self.clock, self.ns = clock, ns

    def submit(self, order: Any) -> None:
        self.clock.spend(self.ns)
        super().submit(order)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr("polybot.kernel.perf_counter_ns", c)
    monkeypatch.setattr("polybot.metrics._perf_ns", c)
    return c


def _snap(asset: str = YES) -> bytes:
    return ENCODER.encode(BookSnapshot(asset_id=asset, market=M, bids=((400_000, 100 * U),), asks=((420_000, 50 * U),)))


def test_strategy_stage_excludes_risk_and_submit(clock: FakeClock, tmp_path: Path) -> None:
    journal = JournalWriter(tmp_path / "j.jsonl", fsync="never")
    k = Kernel(risk=RiskChain([TradingStateValidator(), SlowValidator(clock, 5 * MS)]), executor=SlowExecutor(clock, 2 * MS),
               journal=journal)  # fmt: skip
    k.timing = t = StageTiming()
    real_decoder = k.decoders["events"]

    def slow_decode(msg: bytes, ts: int) -> Any:
        clock.spend(300_000)
        return real_decoder(msg, ts)

    k.decoders["events"] = slow_decode

    def strategy(ev: BookSnapshot) -> None:  # 1 ms of its own, then an order (5 ms risk, 2 ms submit)
        clock.spend(1 * MS)
        k.submit("s", OrderIntent(strategy="s", asset_id=ev.asset_id, side="BUY", price=400_000, size=10 * U))

    k.bus.subscribe(BookSnapshot, strategy)
    k.process(1, "events", _snap())
    assert (t.decode.count, t.decode.sum) == (1, 300_000)
    assert (t.strategy.count, t.strategy.sum) == (1, 1 * MS)
    assert (t.risk.count, t.risk.sum) == (1, 5 * MS)
    assert (t.submit.count, t.submit.sum) == (1, 2 * MS)
    assert t.journal.count == 1 and t.inner == 0


def test_nested_sections_are_exclusive(clock: FakeClock) -> None:
    """A submit() outside a dispatch: the executor's events reach a strategy at once, which
    submits again inside the first hand-over. Each section counts only its own time."""
    k = Kernel(risk=RiskChain([SlowValidator(clock, 5 * MS)]), executor=SlowExecutor(clock, 2 * MS))
    k.timing = t = StageTiming()
    seen: list[str] = []

    def on_accept(ev: Any) -> None:
        if not seen:
            seen.append(ev.client_id)
            k.submit("s", OrderIntent(strategy="s", asset_id=NO, side="BUY", price=400_000, size=10 * U))

    from polybot.events import OrderAccepted

    k.bus.subscribe(OrderAccepted, on_accept)
    k.submit("s", OrderIntent(strategy="s", asset_id=YES, side="BUY", price=400_000, size=10 * U))
    assert t.risk.count == 2 and t.risk.sum == 10 * MS
    assert t.submit.count == 2 and t.submit.sum == 4 * MS  # the outer one: 2 ms, not 2 + 5 + 2
    assert t.inner == 14 * MS  # carried, outside any input ...
    k.process(2, "events", _snap())  # ... and not subtracted from the next input's dispatch
    assert t.inner == 0 and t.strategy.count == 1 and t.strategy.sum == 0


def test_raising_handler_and_decode_failure_still_record(clock: FakeClock) -> None:
    k = Kernel()
    k.timing = t = StageTiming()

    def boom(ev: BookSnapshot) -> None:
        clock.spend(3 * MS)
        raise RuntimeError("handler bug")

    k.bus.subscribe(BookSnapshot, boom)
    k.process(1, "events", _snap())
    assert k.bus.handler_errors == 1
    assert (t.strategy.count, t.strategy.sum) == (1, 3 * MS)

    def broken(msg: bytes, ts: int) -> Any:
        clock.spend(4 * MS)
        raise ValueError("bad value in frame")

    k.add_decoder("feed.x", broken)
    k.process(2, "feed.x", b'{"a":1}')
    assert k.stats.drop_reasons["feed.x:bad_value"] == 1
    assert t.decode.count == 2 and t.decode.sum == 4 * MS
    assert t.strategy.count == 2 and t.inner == 0

    def crash(msg: bytes, ts: int) -> Any:  # a decoder bug: counted as decoder_error
        clock.spend(1 * MS)
        raise ZeroDivisionError

    k.add_decoder("feed.y", crash)
    k.process(3, "feed.y", b"{}")
    assert k.stats.drop_reasons["feed.y:decoder_error"] == 1
    assert t.decode.count == 3 and t.decode.sum == 5 * MS
    assert [h.count for h in t.histograms().values()] == [3, 0, 3, 0, 0]


def test_a_section_cut_short_by_an_exception_records_and_the_next_input_starts_clean(clock: FakeClock) -> None:
    class Refusing(SlowExecutor):
        def submit(self, order: Any) -> None:
            self.clock.spend(self.ns)
            raise OSError("venue unreachable")

    k = Kernel(executor=Refusing(clock, 2 * MS))
    k.timing = t = StageTiming()

    def strategy(ev: BookSnapshot) -> None:
        k.submit("s", OrderIntent(strategy="s", asset_id=ev.asset_id, side="BUY", price=400_000, size=10 * U))

    k.bus.subscribe(BookSnapshot, strategy)
    k.process(1, "events", _snap())
    assert k.bus.handler_errors == 1  # the executor's exception went through the handler
    assert (t.submit.count, t.submit.sum) == (1, 2 * MS)
    assert (t.strategy.count, t.strategy.sum) == (1, 0)
    assert t.inner == 0


# ------------------------------------------------------------------------------ off by default


def test_timing_is_off_by_default() -> None:
    assert Kernel().timing is None
    k = Kernel()
    k.process(1, "events", _snap())
    assert k.timing is None
    mon = Monitor(k)
    fams = families(render_metrics(k, mon))
    assert value(fams, "polybot_stage_timing_enabled") == 0
    assert fams["polybot_stage_latency_seconds"].samples == []  # declared, no samples


def test_timed_and_untimed_paths_give_the_same_journal_and_state(tmp_path: Path) -> None:
    """Every kind of input (market data, a malformed frame, an unknown source, control, clock
    ticks, orders through the paper executor with latency and timers) both ways."""
    outs = []
    for timed in (False, True):
        path = tmp_path / f"j-{timed}.jsonl"
        cfg = parse_config({"executor": {"kind": "paper", "params": {"cash": "100", "latency_ms": 5}},
                            "risk": {"chain": ["trading_state", "notional_caps"],
                                     "validators": {"notional_caps": {"max_open_positions": 1}}}})  # fmt: skip
        k = build_kernel(cfg, executor=build_executor(cfg), journal=JournalWriter(path, fsync="never"), synthesize_timers=True)
        k.add_strategy(Mirror, "mirror", {})
        if timed:
            k.timing = StageTiming()
        k.start()
        t = 1_000 * MS
        inputs: list[tuple[str, Any]] = [
            ("events", ENCODER.encode(MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No")))),
            ("events", _snap(YES) + b"\n"),  # (a newline inside a frame: one journal line)
            ("events", _snap(NO)),
            ("events", b"{not json"),
            ("nowhere", b'{"x": 1}'),
            ("events", "PONG"),
            ("events", ENCODER.encode(TradePrint(asset_id=YES, market=M, price=420_000, size=10 * U))),
            ("events", ENCODER.encode(TradePrint(asset_id=YES2, market=M2, price=420_000, size=10 * U))),
            ("events", ENCODER.encode(TradePrint(asset_id=YES, market=M, price=400_000, size=5 * U))),
            ("control", Halt(reason="x")),
            ("events", ENCODER.encode(TradePrint(asset_id=YES, market=M, price=420_000, size=10 * U))),
            ("clock", b"{}"),
        ]
        for source, msg in inputs:
            t += 3 * MS
            k.process(t, source, msg)
        k.journal.close()  # type: ignore[union-attr]
        st_ = k.stats
        outs.append((path.read_bytes(), k.summary_state(), (st_.inputs, st_.events, st_.dropped, dict(st_.by_source),
                     dict(st_.drop_reasons), st_.intents, st_.orders, st_.fills, st_.rejections)))  # fmt: skip
        if timed:
            assert k.timing.decode.count == st_.inputs == k.timing.strategy.count  # type: ignore[union-attr]
            assert k.timing.risk.count == st_.intents  # type: ignore[union-attr]
    (j0, s0, c0), (j1, s1, c1) = outs
    assert c0[6] >= 1 and c0[8] >= 1  # orders went out and one was rejected
    assert j0 == j1
    assert s0 == s1
    assert c0 == c1


def test_replay_output_is_byte_identical_with_timing_on(tmp_path: Path) -> None:
    cfg = load_config(REPO / "config" / "spread_capture.toml")
    rec = REPO / "recordings" / "spread-capture.jsonl.gz"
    timings: list[StageTiming] = []

    def timed(k: Kernel) -> None:
        k.timing = StageTiming()
        timings.append(k.timing)

    off = replay(rec, cfg, out=tmp_path / "off.jsonl")
    on = replay(rec, cfg, out=tmp_path / "on.jsonl", on_kernel=timed)
    a, b = (tmp_path / "off.jsonl").read_bytes(), (tmp_path / "on.jsonl").read_bytes()
    assert a == b and a.count(b"\n") > 800
    assert off["fills"] == on["fills"] > 0 and off["intents"] == on["intents"]
    t = timings[0]
    assert t.decode.count == on["inputs"] == t.strategy.count == t.journal.count
    assert t.risk.count > 0 and t.submit.count > 0


# ------------------------------------------------------------------------------ the dashboard


def _exposed_names(text: str) -> dict[str, str]:
    """Every sample name a query can use, from the TYPE lines (also of families with no samples
    yet) -> its family."""
    out: dict[str, str] = {}
    for name, typ in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if typ == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = name
        else:
            out[name] = name
    return out


def _panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out += p.get("panels", [])  # (collapsed rows)
    return out


PROMQL_WORDS = {"sum", "rate", "irate", "increase", "histogram_quantile", "by", "without", "max", "min", "avg",
                "count", "clamp_min", "topk", "time", "le", "or", "and", "on", "ignoring", "group_left", "abs",
                "delta", "changes", "resets", "vector", "scalar", "sort_desc", "label_replace"}  # fmt: skip


def test_dashboard_uses_only_metrics_the_code_exports(tmp_path: Path) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert 36 <= dash["schemaVersion"] <= 41
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    s = rich_session(tmp_path)
    text, fams = s.render()
    assert value(fams, "polybot_risk_resizes_total", validator="notional_caps") == 1
    assert value(fams, "polybot_orders_terminal_total", state="cancelled") == 1
    assert sum(smp.value for smp in fams["polybot_executor_rejections"].samples) == 1
    exposed = _exposed_names(text)
    labels_of: dict[str, set[str]] = {}
    for fam in fams.values():
        for smp in fam.samples:
            labels_of.setdefault(smp.name, set()).update(smp.labels)
    used: set[str] = set()
    panels = [p for p in _panels(dash) if p.get("type") != "row"]
    assert len(panels) >= 12
    for p in panels:
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        exprs = [t["expr"] for t in p["targets"]]
        assert exprs, p["title"]
        for expr in exprs:
            names = set(re.findall(r"\bpolybot_[a-zA-Z0-9_]+", expr))
            assert names, (p["title"], expr)
            for n in names:
                assert n in exposed, f"panel {p['title']!r} queries {n}, which render_metrics() does not export"
            used |= names
            # label names in selectors and by () clauses exist on the metrics the query reads
            have = set().union(*(labels_of.get(n, set()) for n in names)) | {"le"}
            wanted = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!=|!~|=)\s*\"", expr))
            for grp in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
                wanted |= {x.strip() for x in grp.split(",") if x.strip()}
            assert wanted <= have, (p["title"], expr, wanted - have)
            for word in re.findall(r"\b([a-z_]+)\s*\(", expr):
                assert word in PROMQL_WORDS, (p["title"], word)
    # the panels the dashboard promises
    for needed in ("polybot_events_total", "polybot_inputs_total", "polybot_dropped_inputs_total",
                   "polybot_stage_latency_seconds_bucket", "polybot_orders_submitted_total", "polybot_fills_total",
                   "polybot_risk_rejections_total", "polybot_executor_rejections_total", "polybot_pnl_net_dollars",
                   "polybot_pnl_realized_dollars", "polybot_pnl_unrealized_dollars", "polybot_exposure_dollars",
                   "polybot_trading_state", "polybot_feed_up", "polybot_books_unhealthy",
                   "polybot_book_hash_checks_total"):  # fmt: skip
        assert needed in used, needed
    assert all(st_ in json.dumps(dash) for st_ in ("0.5", "0.99"))  # p50 / p99
    assert STAGES == ("decode", "journal", "strategy", "risk", "submit")
