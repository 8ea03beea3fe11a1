"""A strategy runs unchanged on a Polymarket US recording: recordings/pmus-spread-capture.jsonl.gz
(recordings/make_pmus.py) is the market path of spread-capture.jsonl.gz in that venue's wire
format (one YES book per market, full-book frames, trade frames, the catalog over REST). Replayed
through the same config as the CLOB recording, with only the asset id changed, the kernel's books
follow the same path at every step and spread_capture quotes and fills on it."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

import msgspec

from polybot.config import Config, parse_config
from polybot.events import BookDelta, BookSnapshot, Event
from polybot.kernel import Kernel
from polybot.replay import replay

ROOT = Path(__file__).resolve().parents[1]
US_REC = ROOT / "recordings" / "pmus-spread-capture.jsonl.gz"
CLOB_REC = ROOT / "recordings" / "spread-capture.jsonl.gz"
CONFIG = ROOT / "config" / "spread_capture.toml"
CLOB_YES = "96043149529719624026372662227822883954944166388333640467890843178593485092061"
CLOB_NO = "72689861703082205664442176776771583808917306527037614838735727774620644114531"
US_LONG, US_SHORT = "pmus:council-stadium-bond:long", "pmus:council-stadium-bond:short"
U = 1_000_000


def config(asset: str) -> Config:
    raw = msgspec.toml.decode(CONFIG.read_bytes())
    raw["strategies"]["sc"]["asset_ids"] = [asset]
    return parse_config(raw, str(CONFIG))


def run(rec: Path, asset: str, tops: dict[str, dict[int, tuple[int, int]]]) -> dict[str, Any]:
    """Replay ``rec`` with spread_capture on ``asset``; ``tops`` gets every book's top after
    each book event, by receive time (the last one at a time wins)."""

    def on_kernel(k: Kernel) -> None:
        def seen(ev: Event) -> None:
            b = k.books.get(ev.asset_id)  # type: ignore[attr-defined]
            if b is not None:
                tops.setdefault(b.asset_id, {})[k.clock.now()] = (b.best_bid, b.best_ask)

        k.bus.subscribe(BookSnapshot, seen)
        k.bus.subscribe(BookDelta, seen)

    return replay(rec, config(asset), on_kernel=on_kernel)


def test_spread_capture_runs_unchanged_on_the_polymarket_us_recording() -> None:
    us_tops: dict[str, dict[int, tuple[int, int]]] = {}
    s = run(US_REC, US_LONG, us_tops)
    assert s["errors"] == {} and s["read"]["corrupt"] == 0, (s["errors"], s["read"])
    assert "input_dropped" not in s["events_by_type"]
    assert s["rejections"] == 0 and s["trading_state"] == "active"
    assert s["orders"] > 200 and s["fills"] > 150
    pnl = s["pnl"]
    # the venue's schedule: takers pay 30 bps of the notional, makers earn 20 bps; a quoting
    # strategy (mostly maker) earns more in rebates than it pays in fees
    assert float(pnl["rebates"]) > float(pnl["fees"]) > 0
    assert float(pnl["net"]) > 0  # the path is the CLOB recording's: capture pays here too
    # the long book is the venue's one book; the short book its exact mirror, at every step
    long_, short = us_tops[US_LONG], us_tops[US_SHORT]
    assert set(long_) == set(short) and len(long_) > 500
    for t, (bid, ask) in long_.items():
        assert short[t] == ((U - ask) if ask else 0, (U - bid) if bid else 0)


def test_the_venue_books_follow_the_clob_recordings_path_step_by_step() -> None:
    clob_tops: dict[str, dict[int, tuple[int, int]]] = {}
    us_tops: dict[str, dict[int, tuple[int, int]]] = {}
    clob = run(CLOB_REC, CLOB_YES, clob_tops)
    us = run(US_REC, US_LONG, us_tops)
    yes, long_ = clob_tops[CLOB_YES], us_tops[US_LONG]
    common = set(yes) & set(long_)
    assert len(common) > 500
    assert all(yes[t] == long_[t] for t in common)
    assert all(clob_tops[CLOB_NO][t] == us_tops[US_SHORT][t] for t in common)
    # the same strategy code, the same path: quoting activity of the same order
    assert 0.7 < us["orders"] / clob["orders"] < 1.3


def test_the_recording_is_made_deterministically() -> None:
    sys.path.insert(0, str(ROOT / "recordings"))
    try:
        import make_pmus
    finally:
        sys.path.pop(0)
    made = ("\n".join(make_pmus.lines()) + "\n").encode()
    assert gzip.decompress(US_REC.read_bytes()) == made
