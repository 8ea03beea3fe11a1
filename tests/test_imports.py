"""polybot.imports: foreign capture formats (received-at, ws-session) detected, read as inputs at
their receive time, converted to journals that replay exactly like the foreign file."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest
from loguru import logger

from polybot.config import Config
from polybot.clock import iso_to_ns as iso_ns
from polybot.imports import ForeignReader, detect_format, import_file
from polybot.journal import INPUT, JournalReader, JournalWriter
from polybot.replay import replay
from sample_data import H1, POLYTOPE, V2S, require_samples

require_samples()

SRC = "polymarket.market"


@pytest.fixture(autouse=True)
def _quiet_logs():  # noqa: ANN202
    logger.disable("polybot")
    yield
    logger.enable("polybot")


def ns(iso: str) -> int:
    """Independent ISO -> ns (UTC), for the test's expectations."""
    d = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (int(d.replace(microsecond=0).timestamp()) * 10**9) + d.microsecond * 1000


# =========================================================================== detection


def test_detect_format_of_the_three_kinds(tmp_path: Path) -> None:
    assert detect_format(H1) == "received-at"
    assert detect_format(V2S) == "ws-session"
    assert detect_format(POLYTOPE) == "journal"  # bare frames
    j = tmp_path / "j.jsonl"
    w = JournalWriter(j, fsync="never", append=False)
    w.write_input(1, SRC, b'"PONG"')
    w.close()
    assert detect_format(j) == "journal"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert detect_format(empty) == "journal"
    blank_first = tmp_path / "blank-first.jsonl"
    blank_first.write_text("\n   \n" + H1.read_text())
    assert detect_format(blank_first) == "received-at"
    gz = tmp_path / "h1.jsonl.gz"
    with gzip.open(gz, "wb") as f:
        f.write(H1.read_bytes())
    assert detect_format(gz) == "received-at"


def test_iso_ns() -> None:
    assert iso_ns("2026-09-30T11:16:20.252Z") == 1_790_766_980_252_000_000 == ns("2026-09-30T11:16:20.252Z")
    assert iso_ns("2026-09-30T13:16:20.252+02:00") == 1_790_766_980_252_000_000
    assert iso_ns("1970-01-01T00:00:00.000001Z") == 1_000
    with pytest.raises(ValueError):
        iso_ns("yesterday")


# =========================================================================== received-at


def test_received_at_reader() -> None:
    recs = [json.loads(line) for line in H1.read_text().splitlines()]
    r = ForeignReader(H1, "received-at")
    out = list(r)
    assert r.stats.inputs == len(out) == 28 and r.stats.corrupt == 0 and r.stats.lines == 28
    assert r.stats.bytes == H1.stat().st_size
    assert all(kind == INPUT and src == SRC for kind, _, src, _ in out)
    tss = [ts for _, ts, _, _ in out]
    assert tss == [ns(x["receivedAt"]) for x in recs]
    assert tss == sorted(tss)
    for (_, _, _, msg), rec in zip(out, recs, strict=True):
        p = rec["payloadUtf8"]
        if p == "PONG":
            assert msg == b'"PONG"'  # kept, as the JSON string the live door journals
        else:
            assert msg == p.strip().encode()
            assert b"\n" not in msg
            msgspec.json.decode(msg)
    assert sum(m == b'"PONG"' for *_, m in out) == 2
    assert out[0][3].startswith(b'[{"market":"0x2aaeb40a') and out[0][3].endswith(b"}]")
    # another source name
    assert {s for _, _, s, _ in ForeignReader(H1, "received-at", source="x.y")} == {"x.y"}


def test_received_at_timestamps_never_go_back(tmp_path: Path) -> None:
    p = tmp_path / "back.jsonl"
    times = ["2026-09-30T11:16:20.252Z", "2026-09-30T11:16:19.000Z", "2026-09-30T11:16:21.000Z", "2026-09-30T11:16:20.500Z"]
    p.write_text("".join(json.dumps({"receivedAt": t, "payloadUtf8": "PONG"}) + "\n" for t in times))
    tss = [ts for _, ts, _, _ in ForeignReader(p, "received-at")]
    assert tss == [ns(times[0]), ns(times[0]), ns(times[2]), ns(times[2])]


def test_gzipped_capture_reads_the_same(tmp_path: Path) -> None:
    gz = tmp_path / "h1.jsonl.gz"
    with gzip.open(gz, "wb") as f:
        f.write(H1.read_bytes())
    assert list(ForeignReader(gz, "received-at")) == list(ForeignReader(H1, "received-at"))


# =========================================================================== ws-session


def test_ws_session_reader_only_recv() -> None:
    recs = [json.loads(line) for line in V2S.read_text().splitlines()]
    recv = [r for r in recs if r["dir"] == "recv"]
    r = ForeignReader(V2S, "ws-session")
    out = list(r)
    assert len(out) == len(recv) == 7 and r.stats.inputs == 7
    assert [ts for _, ts, _, _ in out] == [ns(x["t"]) for x in recv]
    msgs = [m for *_, m in out]
    assert msgs[0].startswith(b'[{"market":"0x017791f2') and msgs[0].endswith(b"}]")
    assert msgs[1:5] == [b'"PONG"'] * 4 and msgs[6] == b'"PONG"'
    assert json.loads(msgs[5])["event_type"] == "new_market"
    # nothing the client sent (subscribe, PING) is an input
    assert not any(b"PING" in m or b'"assets_ids":["6635' in m for m in msgs)


def test_ws_session_close_record_is_not_corrupt() -> None:
    r = ForeignReader(V2S, "ws-session")
    list(r)
    assert r.stats.corrupt == 0


# =========================================================================== import_file


def _same_report(a: dict, b: dict) -> None:
    assert a["books"] == b["books"]
    assert a["events_by_type"] == b["events_by_type"]
    assert a["inputs"] == b["inputs"] and a["errors"] == b["errors"]


def test_import_received_at_replays_identically(tmp_path: Path) -> None:
    out = tmp_path / "h1.journal.jsonl"
    assert import_file(H1, out) == 28
    assert detect_format(out) == "journal"
    direct = replay(H1, Config(), verify_book=True)
    via = replay(out, Config(), verify_book=True)
    assert direct["import_format"] == "received-at" and "import_format" not in via
    _same_report(direct, via)
    assert via["books"]["passed"] == 31 and via["books"]["failed"] == 0
    # the journal holds exactly the reader's inputs
    jr = list(JournalReader(out))
    assert [(k, t, s, m) for k, t, s, m in jr] == list(ForeignReader(H1, "received-at"))
    # and is byte-identical when imported again
    out2 = tmp_path / "again.jsonl"
    import_file(H1, out2, fmt="received-at")
    assert out2.read_bytes() == out.read_bytes()


def test_import_ws_session_replays_identically(tmp_path: Path) -> None:
    out = tmp_path / "v2.journal.jsonl"
    assert import_file(V2S, out) == 7
    direct = replay(V2S, Config(), verify_book=True)
    via = replay(out, Config(), verify_book=True)
    _same_report(direct, via)
    books = via["books"]
    assert books["passed"] == 1 and books["failed"] == 0  # the V2-position book's hash (with "version") recomputes


def test_import_refuses_journals_and_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        import_file(POLYTOPE, tmp_path / "x.jsonl")
    with pytest.raises(ValueError):
        ForeignReader(H1, "csv")


def test_import_gz_output(tmp_path: Path) -> None:
    out = tmp_path / "h1.jsonl.gz"
    assert import_file(H1, out) == 28
    _same_report(replay(H1, Config(), verify_book=True), replay(out, Config(), verify_book=True))


# =========================================================================== corrupt lines


def test_corrupt_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    good = H1.read_text().splitlines()
    lines = [
        good[0],
        "{not json at all",
        json.dumps({"receivedAt": 12345, "payloadUtf8": "PONG"}),  # wrong type
        json.dumps({"receivedAt": "yesterday", "payloadUtf8": "PONG"}),  # bad time
        json.dumps({"receivedAt": "2026-09-30T11:16:21.000Z"}),  # no payload
        "",
        "   ",
        *good[1:9],  # the split run of the first price changes
        good[16],  # PONG
        good[0][: len(good[0]) // 2],  # torn
    ]
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n")
    r = ForeignReader(p, "received-at")
    out = list(r)
    assert r.stats.corrupt == 5 and r.stats.inputs == 10 == len(out)
    assert r.stats.lines == len(lines)
    s = replay(p, Config(), verify_book=True)
    assert s["read"]["corrupt"] == 5 and s["read"]["inputs"] == 10
    assert s["books"]["failed"] == 0 and s["books"]["passed"] == 2 + 2  # the dump and the split run of each token
    assert s["errors"] == {}


def test_corrupt_ws_session_lines(tmp_path: Path) -> None:
    good = V2S.read_text().splitlines()
    lines = [good[0], good[2], '{"t":"2026-10-05T23:15:26.000Z","dir":"recv"', json.dumps({"t": "x", "dir": "recv", "data": "PONG"}),
             good[4]]  # fmt: skip
    p = tmp_path / "bad-session.jsonl"
    p.write_text("\n".join(lines) + "\n")
    assert detect_format(p) == "ws-session"
    r = ForeignReader(p, "ws-session")
    msgs = [m for *_, m in r]
    assert r.stats.corrupt == 2 and msgs[1:] == [b'"PONG"'] and len(msgs) == 2


def test_import_file_with_corrupt_lines(tmp_path: Path) -> None:
    src = tmp_path / "src.jsonl"
    shutil.copy(H1, src)
    with open(src, "a") as f:
        f.write("garbage\n")
    assert import_file(src, tmp_path / "out.jsonl") == 28
