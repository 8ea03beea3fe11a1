"""``polybot bench``: the engine's own speed and memory figures.

Measured here:

* the market-data standard stream (:mod:`polybot.stdstream`: one asset, a 50-level dump, then
  1,000,000 single-entry ``price_change`` frames) replayed from JSONL through decode -> bus ->
  book -> a top-of-book handler, in a fresh process each: hash verification off (journal off),
  then on (``--verify-book``): events/s, p50/p99 per-event latency, peak RSS of the process;

* bus publish -> dispatch with 1 handler, with 10 handlers, and key-routed (10 assets, one keyed
  handler each), FIFO queue and error isolation in place;
* journal write rate (lines/s, MB/s) and read rate (lines/s) of a generated journal;
* kernel replay of a synthetic binary-market stream (decode -> bus -> book -> strategy -> risk),
  inputs/s and per-input latency percentiles;
* what each shipped strategy adds per event (book change, trade): its recording replayed with
  its config (paper executor, risk chain) with and without the strategy (best of several runs),
  the orders it sends there (their risk checks, fills and events are in its cost), its fills and
  net PnL (needs the checkout's config/ and recordings/; skipped when run elsewhere);
* replay memory: peak traced allocation while streaming a 10x longer file (constant memory);
* ``polybot --help`` wall time; peak RSS of the process.
"""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec


def _bus_rate(n: int, handlers: int, keyed: bool) -> float:
    from .bus import Bus
    from .events import BookDelta

    bus = Bus()
    counter = [0]

    def h(ev: Any) -> None:
        counter[0] += 1

    assets = [f"asset-{i}" for i in range(10)]
    if keyed:
        for a in assets:
            bus.subscribe(BookDelta, h, key=a)
    else:
        for _ in range(handlers):
            bus.subscribe(BookDelta, h)
    evs = [BookDelta(asset_id=assets[i % 10], side="BID", price=500_000, size=i) for i in range(1000)]
    reps = max(1, n // len(evs))
    pub = bus.publish
    gc.disable()
    try:
        t = time.perf_counter()
        for _ in range(reps):
            for e in evs:
                pub(e)
        dt = time.perf_counter() - t
    finally:
        gc.enable()
    return reps * len(evs) / dt


def _journal(path: Path, n: int) -> tuple[float, float, float]:
    from .journal import JournalReader, JournalWriter

    msg = (b'{"market":"0x2aaeb40ad2a1ad262d75d5c52bff1a9f801fb72e65774343729fe103ee9fa308","price_changes":'
           b'[{"asset_id":"40113202025193181740822500498877260546965498642740503547096491847887927548587",'
           b'"price":"0.46","size":"918.34","side":"BUY","hash":"c8dc1ac179ac0e493132cfed6b68438c2d20cf1b",'
           b'"best_bid":"0.5","best_ask":"0.51"}],"timestamp":"1790766981628","event_type":"price_change"}')  # fmt: skip
    w = JournalWriter(path, fsync="never", append=False)
    t = time.perf_counter()
    ts = 1_790_766_981_628_000_000
    for i in range(n):
        w.write_input(ts + i, "polymarket.market", msg)
    w.close()
    dt_w = time.perf_counter() - t
    size_mb = path.stat().st_size / 1e6
    t = time.perf_counter()
    count = 0
    for _ in JournalReader(path):
        count += 1
    dt_r = time.perf_counter() - t
    assert count == n
    return n / dt_w, size_mb / dt_w, n / dt_r


def _replay_rate(path: Path, paper: bool = False, operator: bool = False) -> dict[str, float]:
    """``operator``: as the daemon runs with its API on (the Monitor on the bus, the kernel's
    stage timing and the order log)."""
    from .config import parse_config
    from .journal import ENGINE_EVENT, JournalReader
    from .wiring import build_executor, build_kernel

    cfg = parse_config({"strategies": {"dip": {"class": "example_buy_below", "max_price": "0.49", "take_profit": "0.52"}},
                        "executor": {"kind": "paper", "params": {"cash": "1000000", "latency_ms": 20}}})  # fmt: skip
    k = build_kernel(cfg, synthesize_timers=True, executor=build_executor(cfg) if paper else None)
    k.start()
    if operator:
        from .logs import OrderLog
        from .metrics import StageTiming
        from .monitor import Monitor

        k.timing = StageTiming()
        Monitor(k)
        OrderLog().attach(k)
    records = [(ts, s, m) for kind, ts, s, m in JournalReader(path) if kind != ENGINE_EVENT]
    lat = []
    pc = time.perf_counter_ns
    process = k.process
    gc.disable()
    try:
        t0 = time.perf_counter()
        for ts, s, m in records:
            t = pc()
            process(ts, s, m)
            lat.append(pc() - t)
        dt = time.perf_counter() - t0
    finally:
        gc.enable()
    lat.sort()
    return {
        "kernel_inputs_per_s": len(records) / dt,
        "kernel_events_per_s": k.stats.events / dt,
        "kernel_p50_us": lat[len(lat) // 2] / 1000,
        "kernel_p99_us": lat[int(len(lat) * 0.99)] / 1000,
        "kernel_intents": k.stats.intents,
        "kernel_fills": k.stats.fills,
    }


#: params for the chain bench: every built-in validator, with limits that let the orders through
_CHAIN_PARAMS: dict[str, dict[str, Any]] = {
    "rate_limit": {"per_market_per_s": 1_000_000, "burst_market": 1_000_000, "global_per_s": 1_000_000,
                   "burst_global": 1_000_000, "cancels_per_s": 1_000_000, "burst_cancels": 1_000_000},
    "notional_caps": {"per_order": "1000", "per_asset": "100000", "per_market": "100000", "per_group": "100000",
                      "total": "1000000", "max_open_positions": 1000},
    "position_caps": {"max_shares": "100000", "max_imbalance": "100000"},
    "loss_limits": {"max_daily_loss": "1000", "max_drawdown": "1000"},
    "sizing": {"mode": "fixed", "size": "100"},
}  # fmt: skip


def _risk_chain_cost(n: int) -> dict[str, float]:
    """Per-intent latency of ``submit()`` through every built-in validator, minus the same with
    an empty ("pass") chain: what the risk chain adds. Ten binary markets with books and catalog
    entries; each order is cancelled after it is timed, so the state stays the same size."""
    from .config import parse_config
    from .events import BookSnapshot, FeeSchedule, MarketInfo, OrderIntent
    from .kernel import Kernel
    from .risk import BUILTIN_VALIDATORS
    from .wiring import build_risk

    names = [v for v in BUILTIN_VALIDATORS if v != "pass"]

    def run(chain: list[str]) -> list[int]:
        cfg = parse_config({"risk": {"chain": chain, "validators": {k: v for k, v in _CHAIN_PARAMS.items() if k in chain}}})
        k = Kernel(risk=build_risk(cfg), verify_books=False)
        t = 10**18
        assets = []
        for i in range(10):
            y, no, m = f"y{i}", f"n{i}", f"m{i}"
            assets.append((y, m))
            evs = [MarketInfo(market=m, asset_ids=(y, no), outcomes=("Yes", "No"), fees=FeeSchedule(rate_ppm=70_000),
                              event_id="e", series="btc-updown-15m"),
                   BookSnapshot(asset_id=y, market=m, bids=((480_000, 10**9),), asks=((500_000, 10**9),), tick_size=10_000),
                   BookSnapshot(asset_id=no, market=m, bids=((500_000, 10**9),), asks=((520_000, 10**9),), tick_size=10_000)]  # fmt: skip
            t += 1_000_000
            k.process(t, "events", __import__("polybot.events", fromlist=["ENCODER"]).ENCODER.encode(evs))
        lat = []
        pc = time.perf_counter_ns
        gc.disable()  # like the other kernel figures: the collector's pauses are not the chain's
        try:
            for j in range(n):
                y, m = assets[j % 10]
                it = OrderIntent(strategy="s", asset_id=y, market=m, side="BUY", price=450_000, size=10_000_000)
                t0 = pc()
                d = k.submit("s", it)
                lat.append(pc() - t0)
                if d.client_ids:
                    k.cancel(None, d.client_ids[0])
                if j % 1000 == 0:
                    t += 200_000_000
                    k.clock.advance(t)
        finally:
            gc.enable()
        lat.sort()
        return lat

    base = run(["pass"])
    full = run(names)
    return {
        "risk_validators": len(names),
        "risk_chain_p50_us": (full[len(full) // 2] - base[len(base) // 2]) / 1000,
        "risk_chain_p99_us": (full[int(len(full) * 0.99)] - base[int(len(base) * 0.99)]) / 1000,
        "risk_submit_p50_us": full[len(full) // 2] / 1000,
    }


#: (strategy, its config under config/, its recording under recordings/)
STRATEGY_RUNS = [
    ("dutch_book", "dutch_book", "dutch-book-yes"),
    ("pair_cost", "pair_cost", "pair-cost-window"),
    ("spread_capture", "spread_capture", "spread-capture"),
    ("market_making", "market_making", "market-making"),
    ("live_arbitrage", "live_arbitrage", "sports-nba-lag"),
    ("statistical_edge", "statistical_edge", "sports-pregame-edge"),
]


def _strategy_costs(reps: int, root: Path | None = None) -> dict[str, Any]:
    """Per shipped strategy: us per event its replay takes with the strategy minus without it
    (same config, same recording, paper executor and risk chain in both), and what it did."""
    from .config import load_config
    from .journal import INPUT, JournalReader
    from .wiring import build_executor, build_kernel

    root = root or Path.cwd()
    out: dict[str, Any] = {}
    for name, cfg_name, rec in STRATEGY_RUNS:
        cfg_path, rec_path = root / "config" / f"{cfg_name}.toml", root / "recordings" / f"{rec}.jsonl.gz"
        if not (cfg_path.exists() and rec_path.exists()):
            continue
        cfg = load_config(cfg_path)
        records = [(ts, s, m) for kind, ts, s, m in JournalReader(rec_path) if kind == INPUT]

        def run(c: Any) -> tuple[float, Any]:
            k = build_kernel(c, executor=build_executor(c), synthesize_timers=True)
            k.start()
            process = k.process
            gc.disable()
            try:
                t0 = time.perf_counter()
                for ts, s, m in records:
                    process(ts, s, m)
                dt = time.perf_counter() - t0
            finally:
                gc.enable()
            return dt, k

        bare = msgspec.structs.replace(cfg, strategies={})
        with_s = min(run(cfg)[0] for _ in range(reps))
        without = min(run(bare)[0] for _ in range(reps))
        events = run(bare)[1].stats.events  # the recording's events (book changes, trades, catalog)
        _dt, k = run(cfg)
        pf = k.portfolio
        out[f"strat_{name}_us_per_event"] = max(0.0, (with_s - without) / events * 1e6)
        out[f"strat_{name}_orders_per_100_events"] = 100 * k.stats.orders / events
        out[f"strat_{name}_inputs"] = len(records)
        out[f"strat_{name}_fills"] = k.stats.fills
        out[f"strat_{name}_net_pnl"] = pf.pnl("", pf.marks(k.books)).net / 1e6
    return out


def _read_peak_mb(path: Path) -> float:
    from .journal import JournalReader

    tracemalloc.start()
    for _ in JournalReader(path):
        pass
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def _help_seconds() -> float:
    exe = Path(sys.executable).parent / "polybot"
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "polybot.cli", "--help"]
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - t)
    return best


def _standard_stream(quick: bool) -> dict[str, Any]:
    from .stdstream import cached

    path = cached(n=100_000 if quick else 1_000_000)
    out: dict[str, Any] = {}
    for verify in (False, True):
        cmd = [sys.executable, "-m", "polybot.stdstream", "run", str(path)] + (["--verify"] if verify else [])
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res = msgspec.json.decode(r.stdout.strip().splitlines()[-1])
        if res["hash_failed"] or res["dropped"] or not res["healthy_at_end"]:
            raise RuntimeError(f"standard stream replay is wrong: {res}")
        k = "std_verify" if verify else "std"
        out[f"{k}_events_per_s"] = res["events_per_s"]
        out[f"{k}_p50_us"] = res["p50_us"]
        out[f"{k}_p99_us"] = res["p99_us"]
        out[f"{k}_peak_rss_mb"] = res["peak_rss_mb"]
        if verify:
            out["std_verify_hash_checks"] = res["hash_passed"]
        out["std_events"] = res["events"]
    return out


def _live_figures(quick: bool) -> dict[str, Any]:
    """The live executor's own figures (signing, intent -> wire on loopback), when it and its
    ``live`` extra are installed: found through the ``clob`` executor's ``bench_module``."""
    import importlib

    from .wiring import _by_name

    try:
        cls = _by_name("polybot.executors", "clob")
        mod = importlib.import_module(cls.bench_module)
        return mod.live_figures(quick)  # type: ignore[no-any-return]
    except (LookupError, ImportError, AttributeError, ValueError) as exc:
        sys.stderr.write(f"bench: live executor figures skipped ({exc})\n")
        return {}


def collect(quick: bool = False) -> dict[str, Any]:
    from .synthetic import binary_market_stream, write_stream

    n_bus = 300_000 if quick else 2_000_000
    n_journal = 100_000 if quick else 500_000
    figs: dict[str, Any] = {}
    figs.update(_standard_stream(quick))
    figs["bus_dispatch_1_handler_per_s"] = _bus_rate(n_bus, 1, False)
    figs["bus_dispatch_10_handlers_events_per_s"] = _bus_rate(n_bus // 4, 10, False)
    figs["bus_dispatch_keyed_10_assets_per_s"] = _bus_rate(n_bus, 10, True)
    with tempfile.TemporaryDirectory() as d:
        jp = Path(d) / "bench.jsonl"
        w_lines, w_mb, r_lines = _journal(jp, n_journal)
        figs["journal_write_lines_per_s"] = w_lines
        figs["journal_write_mb_per_s"] = w_mb
        figs["journal_read_lines_per_s"] = r_lines
        small = Path(d) / "small.jsonl"
        big = Path(d) / "big.jsonl"
        n_small = 2_000 if quick else 10_000
        write_stream(str(small), binary_market_stream(n_small, seed=1))
        write_stream(str(big), binary_market_stream(n_small * 10, seed=1))
        figs.update(_replay_rate(small))
        figs.update({"paper_" + key: v for key, v in _replay_rate(small, paper=True).items()})
        figs.update({"operator_" + key: v for key, v in _replay_rate(small, paper=True, operator=True).items()})
        figs["replay_read_peak_mb_small"] = _read_peak_mb(small)
        figs["replay_read_peak_mb_10x"] = _read_peak_mb(big)
    figs.update(_risk_chain_cost(5_000 if quick else 20_000))
    figs.update(_strategy_costs(2 if quick else 5))
    figs.update(_live_figures(quick))
    figs["cli_help_s"] = _help_seconds()
    figs["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figs["python"] = sys.version.split()[0]
    figs["cpus"] = os.cpu_count()
    return figs


ROWS = [
    ("std_events", "standard stream: events replayed", "events", "{:,.0f}"),
    ("std_events_per_s", "standard stream, end to end (decode+bus+book+handler)", "events/s", "{:,.0f}"),
    ("std_p50_us", "standard stream per-event latency p50", "us", "{:.2f}"),
    ("std_p99_us", "standard stream per-event latency p99", "us", "{:.2f}"),
    ("std_peak_rss_mb", "standard stream peak RSS (whole process)", "MB", "{:.1f}"),
    ("std_verify_events_per_s", "standard stream with --verify-book (hash per event)", "events/s", "{:,.0f}"),
    ("std_verify_p50_us", "  with --verify-book: latency p50", "us", "{:.2f}"),
    ("std_verify_p99_us", "  with --verify-book: latency p99", "us", "{:.2f}"),
    ("std_verify_peak_rss_mb", "  with --verify-book: peak RSS", "MB", "{:.1f}"),
    ("std_verify_hash_checks", "  with --verify-book: hash checks passed", "", "{:,.0f}"),
    ("bus_dispatch_1_handler_per_s", "bus publish->dispatch, 1 handler", "events/s", "{:,.0f}"),
    ("bus_dispatch_10_handlers_events_per_s", "bus publish->dispatch, 10 handlers", "events/s", "{:,.0f}"),
    ("bus_dispatch_keyed_10_assets_per_s", "bus key-routed (10 assets, 1 handler each)", "events/s", "{:,.0f}"),
    ("journal_write_lines_per_s", "journal write", "lines/s", "{:,.0f}"),
    ("journal_write_mb_per_s", "journal write", "MB/s", "{:,.1f}"),
    ("journal_read_lines_per_s", "journal read (replay reader)", "lines/s", "{:,.0f}"),
    ("kernel_inputs_per_s", "kernel replay, synthetic market + example strategy", "inputs/s", "{:,.0f}"),
    ("kernel_events_per_s", "kernel replay, same run", "events/s", "{:,.0f}"),
    ("kernel_p50_us", "kernel per-input latency p50", "us", "{:.2f}"),
    ("kernel_p99_us", "kernel per-input latency p99", "us", "{:.2f}"),
    ("paper_kernel_inputs_per_s", "kernel replay, same market + paper executor", "inputs/s", "{:,.0f}"),
    ("paper_kernel_p50_us", "  with the paper executor: latency p50", "us", "{:.2f}"),
    ("paper_kernel_p99_us", "  with the paper executor: latency p99", "us", "{:.2f}"),
    ("paper_kernel_fills", "  with the paper executor: fills", "", "{:,.0f}"),
    ("operator_kernel_p50_us", "  + API on (monitor, stage timing, order log): p50", "us", "{:.2f}"),
    ("operator_kernel_p99_us", "  + API on (monitor, stage timing, order log): p99", "us", "{:.2f}"),
    ("risk_validators", "risk chain: built-in validators, all in one chain", "", "{:,.0f}"),
    ("risk_submit_p50_us", "  submit() through the whole chain, p50", "us", "{:.2f}"),
    ("risk_chain_p50_us", "  what the chain adds per intent, p50", "us", "{:.2f}"),
    ("risk_chain_p99_us", "  what the chain adds per intent, p99", "us", "{:.2f}"),
    *[row for name, _c, rec in STRATEGY_RUNS for row in (
        (f"strat_{name}_us_per_event", f"{name}: adds per event of {rec}", "us", "{:.2f}"),
        (f"strat_{name}_orders_per_100_events", f"  {name}: orders sent per 100 events", "", "{:.1f}"),
        (f"strat_{name}_fills", f"  {name}: fills in that replay", "", "{:,.0f}"),
        (f"strat_{name}_net_pnl", f"  {name}: net PnL in that replay", "pUSD", "{:,.4f}"),
    )],
    ("live_sign_p50_us", "live: sign + serialise one order, p50", "us", "{:.1f}"),
    ("live_sign_p99_us", "live: sign + serialise one order, p99", "us", "{:.1f}"),
    ("live_wire_p50_us", "live: intent -> request at the simulator, p50", "us", "{:.1f}"),
    ("live_wire_p99_us", "live: intent -> request at the simulator, p99", "us", "{:.1f}"),
    ("replay_read_peak_mb_small", "replay read, peak traced memory (1x file)", "MB", "{:.2f}"),
    ("replay_read_peak_mb_10x", "replay read, peak traced memory (10x file)", "MB", "{:.2f}"),
    ("cli_help_s", "polybot --help wall time (best of 5)", "s", "{:.3f}"),
    ("peak_rss_mb", "peak RSS of the bench process", "MB", "{:.1f}"),
]


def run_bench(json_out: bool = False, quick: bool = False) -> int:
    from .logs import setup_logging

    setup_logging("WARNING")
    figs = collect(quick)
    w = sys.stdout.write
    w(f"polybot bench (python {figs['python']}, {figs['cpus']} cpus{', quick' if quick else ''})\n")
    for key, label, unit, fmt in ROWS:
        if key in figs:  # (the strategy rows need the checkout's config/ and recordings/)
            w(f"  {label:<54} {fmt.format(figs[key]):>14} {unit}\n")
    if json_out:
        w(msgspec.json.encode({k: (round(v, 3) if isinstance(v, float) else v) for k, v in figs.items()}).decode() + "\n")
    return 0
