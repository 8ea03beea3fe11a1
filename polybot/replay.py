"""Replay: the same kernel, fed from a recording instead of the sockets.

* **faithful**: a live journal fed back whole, recorded executor responses included: an
  asynchronous executor (live) is replaced by :class:`RecordedExecutor`, which sends nothing,
  while a simulated one (null, paper) is recomputed, since its answers are engine events. The engine events the replay produces after each
  input are compared, byte for byte, with the ones the live run journaled after that input;
  every difference is a divergence, counted and reported (the first ones in detail).
* **what-if**: inputs only. Recorded executor responses and engine lines are skipped; the
  configured simulated executor answers (``paper`` by default, also in place of an asynchronous
  one);
  strategies and config may differ from the live run; timers fire when the replay clock passes
  their deadline.

The file is streamed (constant memory). Output journals are byte-identical across runs and
processes for the same input, config and code.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from loguru import logger

from .config import Config
from .events import Event, type_name
from .execution.router import offline_twin
from .imports import ForeignReader, detect_format
from .journal import ENGINE_EVENT, JournalReader, JournalWriter
from .report import SessionReport
from .sources import bare_ts_for
from .units import from_units
from .wiring import build_executor, build_kernel

Mode = Literal["faithful", "what-if"]


class Divergence(Exception):
    pass


def replay(
    path: str | os.PathLike[str],
    cfg: Config,
    *,
    mode: Mode = "what-if",
    strategies: Iterable[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    bare_source: str | None = None,
    progress: bool = False,
    max_divergences_shown: int = 5,
    on_kernel: Callable[[Any], None] | None = None,
    verify_book: bool = False,
    import_format: str = "auto",
    on_report: Callable[[SessionReport], None] | None = None,
) -> dict[str, Any]:
    """Replay ``path`` and return the summary (see :func:`summarize`). ``verify_book`` checks
    every book against the venue's hashes and top of book; ``import_format`` reads a foreign
    capture (:mod:`polybot.imports`), detected from the first line by default. ``on_report``
    receives the run's :class:`SessionReport` before the first input (after ``on_kernel``),
    for a subscriber that reads its figures as they change (:mod:`polybot.htmlreport`)."""
    path = Path(path)
    bare = bare_source or cfg.replay.bare_source
    fmt = detect_format(path) if import_format == "auto" else import_format
    reader: Any
    if fmt == "journal":
        reader = JournalReader(path, bare_source=bare, bare_ts=bare_ts_for(bare))
    else:
        reader = ForeignReader(path, fmt, source=bare)
    writer = JournalWriter(out, fsync="never", append=False) if out else None
    faithful = mode == "faithful"
    executor: Any = build_executor(cfg, configure=False)
    if executor.asynchronous:
        # its answers are inputs in the journal: faithful replay feeds them back; what-if
        # replay cannot ask it, so a simulated executor answers instead
        if not faithful:
            logger.warning("what-if replay: executor {!r} answers asynchronously; using 'paper' instead", executor.name)
        executor = offline_twin(executor, faithful, lambda: build_executor(cfg, "paper", params={}))
    kernel = build_kernel(cfg, executor=executor, journal=writer, synthesize_timers=not faithful,
                          only_strategies=strategies, verify_books=verify_book)  # fmt: skip
    report = SessionReport(kernel, mark=cfg.portfolio.mark, sample_ns=int(cfg.portfolio.drawdown_sample_s * 1e9))
    counts: dict[type, int] = {}

    def count(ev: Event) -> None:
        c = ev.__class__
        counts[c] = counts.get(c, 0) + 1

    kernel.bus.subscribe(Event, count)
    if on_kernel is not None:
        on_kernel(kernel)
    if on_report is not None:
        on_report(report)
    kernel.start()

    divergences: list[dict[str, Any]] = []
    n_div = 0
    expected: list[bytes] = []
    produced: list[bytes] = []
    if faithful:
        kernel.engine_sink = produced
    last_input_line = 0
    skipped_exec = 0
    size = path.stat().st_size if path.suffix != ".gz" else 0
    t0 = time.perf_counter()
    next_progress = t0 + 2.0
    process = kernel.process

    def compare() -> None:
        nonlocal n_div
        if produced != expected:
            n_div += 1
            if len(divergences) < max_divergences_shown:
                divergences.append({
                    "after_input_line": last_input_line,
                    "expected": [e.decode() for e in expected[:4]],
                    "produced": [p.decode() for p in produced[:4]],
                })  # fmt: skip
        produced.clear()
        expected.clear()

    for kind, ts, source, payload in reader:
        if kind == ENGINE_EVENT:
            if faithful:
                expected.append(payload)
            continue
        if faithful:
            compare()
            last_input_line = reader.stats.lines
        elif source.startswith("exec."):
            skipped_exec += 1
            continue
        process(ts, source, payload)
        if progress and reader.stats.lines & 0x3FF == 0:
            now = time.perf_counter()
            if now >= next_progress:
                next_progress = now + 0.5
                pct = f" {100 * reader.position / size:5.1f}%" if size else ""
                sys.stderr.write(f"\rreplay{pct}  {reader.stats.lines:,} lines  {kernel.stats.events / (now - t0):,.0f} events/s ")
                sys.stderr.flush()
    kernel.settle_books()
    kernel.stop()  # the strategies' on_stop (a cancel there is an engine event of the session's end)
    if faithful:
        compare()
    wall = time.perf_counter() - t0
    if progress and wall > 2.0:
        sys.stderr.write("\n")
    if writer is not None:
        writer.close()
    summary = summarize(kernel, counts, wall, str(path), mode)
    summary["report"] = report.summary()
    summary["lines"] = reader.stats.lines
    summary["read"] = {"inputs": reader.stats.inputs, "engine_lines": reader.stats.engine,
                       "bare": reader.stats.bare, "torn": reader.stats.torn, "corrupt": reader.stats.corrupt}  # fmt: skip
    if faithful:
        summary["divergences"] = n_div
        summary["divergence_examples"] = divergences
    else:
        summary["skipped_executor_responses"] = skipped_exec
    if fmt != "journal":
        summary["import_format"] = fmt
    if verify_book:
        summary["books"] = book_report(kernel)
    if out:
        summary["out"] = str(out)
    return summary


def book_report(kernel: Any) -> dict[str, Any]:
    """Per asset and in total: hash checks passed/failed, best bid/ask mismatches, resyncs,
    snapshots, last-trade-price searches, and the book's health at the end; plus dropped
    inputs by reason."""
    integ = kernel.integrity.summary()
    assets = {}
    for aid, c in integ["assets"].items():
        b = kernel.books.get(aid)
        c = dict(c)
        if b is not None:
            c["healthy"] = b.healthy
            if not b.healthy:
                c["unhealthy_reason"] = b.unhealthy_reason
        assets[aid] = c
    total = integ["total"]
    return {
        "hash_checks": total.get("passed", 0) + total.get("failed", 0),
        "passed": total.get("passed", 0),
        "failed": total.get("failed", 0),
        "bbo_mismatches": total.get("bbo_mismatch", 0),
        "resyncs": total.get("resyncs", 0),
        "unsettled": total.get("unsettled", 0),
        "total": total,
        "assets": assets,
        "dropped": dict(sorted(kernel.stats.drop_reasons.items())),
    }


def summarize(kernel: Any, counts: dict[type, int], wall: float, file: str, mode: str) -> dict[str, Any]:
    st = kernel.stats
    pf = kernel.portfolio
    unrealized = pf.unrealized(pf.marks(kernel.books))
    realized = sum(p.realized for p in pf.positions.values())
    fees = pf.fees_paid()
    rebates = pf.rebates_earned()
    errors: Counter[str] = Counter()
    for k, v in st.drop_reasons.items():
        errors[k] += v
    if kernel.bus.handler_errors:
        errors["handler_error"] = kernel.bus.handler_errors
    if kernel.clock.clamped:
        errors["clock_clamped"] = kernel.clock.clamped
    total_events = sum(counts.values())
    return {
        "file": file,
        "mode": mode,
        "inputs": st.inputs,
        "events": total_events,
        "events_by_type": {type_name(c): n for c, n in sorted(counts.items(), key=lambda x: type_name(x[0]))},
        "wall_s": round(wall, 4),
        "events_per_s": round(total_events / wall) if wall > 0 else 0,
        "intents": st.intents,
        "orders": st.orders,
        "fills": st.fills,
        "rejections": st.rejections,
        "open_orders": len(kernel.orders.open_orders()),
        "positions": {aid: from_units(p.size) for aid, p in sorted(pf.positions.items()) if p.size},
        "pnl": {
            "realized": from_units(realized),
            "fees": from_units(fees),
            "rebates": from_units(rebates),
            "unrealized": from_units(unrealized),
            "net": from_units(realized - fees + rebates + unrealized),
            "cash": from_units(pf.cash),
        },
        "trading_state": kernel.trading_state,
        "errors": dict(sorted(errors.items())),
    }
