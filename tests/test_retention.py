"""Journal retention (polybot.retention, ``[retention]``, ``polybot prune``): old parts are
gzipped atomically and later deleted, the newest ``keep_parts`` and the current journal and its
snapshot never; ages come from the files' mtimes (faked with os.utime) against a given clock;
a compressed part still replays faithfully; bad values are refused naming the field."""

from __future__ import annotations

import gzip
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from polybot.config import ConfigError, RetentionConfig, parse_config
from polybot.daemon import Daemon, run_daemon
from polybot.replay import replay
from polybot.retention import (RETENTION_LOCK, RetentionBusy, Stopped, _DirLock, apply, compress, describe,
                               list_parts, next_part_number, plan, prune)  # fmt: skip

from proc_helpers import CLI, RECORDING

DAY = 86_400.0
NOW = 1_800_000_000.0  # the clock the pure functions are given


def make_dir(d: Path, ages_days: dict[int, float], *, gz: tuple[int, ...] = (), now: float = NOW) -> None:
    """journal.jsonl + snapshot.json (current) and parts journal.<n>.jsonl[.gz] + snapshot.<n>.json
    aged ``ages_days[n]`` days before ``now``."""
    d.mkdir(parents=True, exist_ok=True)
    for name in ("journal.jsonl", "snapshot.json"):
        (d / name).write_bytes(b'{"current": true}\n')
        os.utime(d / name, (now - 400 * DAY, now - 400 * DAY))  # older than anything: never touched
    for n, age in ages_days.items():
        body = b"".join(b'{"ts":%d,"source":"s","msg":{"n":%d}}\n' % (i, n) for i in range(2000))
        p = d / (f"journal.{n}.jsonl" + (".gz" if n in gz else ""))
        p.write_bytes(gzip.compress(body) if n in gz else body)
        (d / f"snapshot.{n}.json").write_bytes(b"{}")
        t = now - age * DAY
        os.utime(p, (t, t))
        os.utime(d / f"snapshot.{n}.json", (t, t))


def policy(compress: float = 0, delete: float = 0, keep: int = 0) -> RetentionConfig:
    return RetentionConfig(compress_after_days=compress, delete_after_days=delete, keep_parts=keep)


def names(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()} - {RETENTION_LOCK}


def test_plan_compresses_old_parts_and_deletes_older_ones_keeping_the_newest(tmp_path: Path) -> None:
    d = tmp_path / "data"
    make_dir(d, {1: 90, 2: 40, 3: 20, 4: 5, 5: 1, 6: 0.2}, gz=(2,))
    acts = plan(d / "journal.jsonl", policy(compress=3, delete=30, keep=2), NOW, d / "snapshot.json")
    got = [(a.kind, a.path.name) for a in acts]
    assert got == [("delete", "journal.1.jsonl"), ("delete", "snapshot.1.json"),
                   ("delete", "journal.2.jsonl.gz"), ("delete", "snapshot.2.json"),
                   ("compress", "journal.3.jsonl"), ("compress", "journal.4.jsonl")]  # fmt: skip
    assert acts[4].target == d / "journal.3.jsonl.gz" and 19.9 < acts[4].age_days < 20.1

    # keep_parts protects the newest parts from deletion whatever their age
    acts = plan(d / "journal.jsonl", policy(delete=0.1, keep=4), NOW, d / "snapshot.json")
    assert sorted({a.part for a in acts}) == [1, 2]
    # 0 = never; the current journal and snapshot are never in a plan
    assert plan(d / "journal.jsonl", policy(), NOW, d / "snapshot.json") == []
    acts = plan(d / "journal.jsonl", policy(compress=0.01, delete=0.01), NOW, d / "snapshot.json")
    assert not {a.path.name for a in acts} & {"journal.jsonl", "snapshot.json"}


def test_prune_compresses_atomically_and_deletes(tmp_path: Path) -> None:
    d = tmp_path / "data"
    make_dir(d, {1: 90, 2: 40, 3: 20, 4: 5, 5: 1})
    before = {n: (d / f"journal.{n}.jsonl").read_bytes() for n in (3, 4)}
    mtime4 = (d / "journal.4.jsonl").stat().st_mtime_ns
    current = (d / "journal.jsonl").read_bytes()

    dry = prune(d / "journal.jsonl", d / "snapshot.json", policy(compress=3, delete=30, keep=2), NOW, dry_run=True)
    assert len(dry) == 6 and not any(a.done for a in dry)
    assert "would compress" in describe(dry[-1], dry_run=True)
    assert (d / "journal.1.jsonl").exists()  # a dry run does nothing

    acts = prune(d / "journal.jsonl", d / "snapshot.json", policy(compress=3, delete=30, keep=2), NOW)
    assert all(a.done for a in acts)
    assert names(d) == {"journal.jsonl", "snapshot.json", "journal.3.jsonl.gz", "snapshot.3.json",
                        "journal.4.jsonl.gz", "snapshot.4.json", "journal.5.jsonl", "snapshot.5.json"}  # fmt: skip
    for n, body in before.items():
        assert gzip.decompress((d / f"journal.{n}.jsonl.gz").read_bytes()) == body
    # the .gz keeps the session's mtime: its age still counts from when the session ended
    assert (d / "journal.4.jsonl.gz").stat().st_mtime_ns == mtime4
    assert (d / "journal.jsonl").read_bytes() == current
    c = next(a for a in acts if a.kind == "compress")
    assert c.size_after < c.size and describe(c).startswith(f"compressed {d / 'journal.3.jsonl'} -> ")

    # later: the compressed parts age past delete_after_days (keep_parts = 1 keeps part 5)
    acts = prune(d / "journal.jsonl", d / "snapshot.json", policy(compress=3, delete=4, keep=1), NOW)
    assert names(d) == {"journal.jsonl", "snapshot.json", "journal.5.jsonl", "snapshot.5.json"}
    assert {a.path.name for a in acts if a.kind == "delete"} == {"journal.3.jsonl.gz", "snapshot.3.json",
                                                                "journal.4.jsonl.gz", "snapshot.4.json"}  # fmt: skip


def test_interrupted_compressions_are_cleaned_up_and_redone(tmp_path: Path) -> None:
    d = tmp_path / "data"
    make_dir(d, {1: 10, 2: 10})
    body1 = (d / "journal.1.jsonl").read_bytes()
    # a crash while writing part 1's .gz.tmp; a crash between the rename of part 2's .gz and the
    # removal of the original (both there)
    (d / "journal.1.jsonl.gz.tmp").write_bytes(b"\x1f\x8b half")
    (d / "journal.2.jsonl.gz").write_bytes(gzip.compress((d / "journal.2.jsonl").read_bytes()))
    parts, tmps = list_parts(d / "journal.jsonl", d / "snapshot.json")
    assert [p.n for p in parts] == [1, 2] and parts[1].plain and parts[1].gz and tmps == [d / "journal.1.jsonl.gz.tmp"]
    acts = prune(d / "journal.jsonl", d / "snapshot.json", policy(compress=1), NOW)
    assert [(a.kind, a.path.name) for a in acts] == [("cleanup", "journal.1.jsonl.gz.tmp"),
                                                     ("compress", "journal.1.jsonl"), ("compress", "journal.2.jsonl")]  # fmt: skip
    assert names(d) == {"journal.jsonl", "snapshot.json", "journal.1.jsonl.gz", "snapshot.1.json",
                        "journal.2.jsonl.gz", "snapshot.2.json"}  # fmt: skip
    assert gzip.decompress((d / "journal.1.jsonl.gz").read_bytes()) == body1


def test_a_stopped_compression_leaves_the_part_as_it_was(tmp_path: Path) -> None:
    d = tmp_path / "data"
    make_dir(d, {1: 10})
    src = d / "journal.1.jsonl"
    body = src.read_bytes()
    with pytest.raises(Stopped):
        compress(src, d / "journal.1.jsonl.gz", should_stop=lambda: True)
    assert src.read_bytes() == body and names(d) == {"journal.jsonl", "snapshot.json", "journal.1.jsonl", "snapshot.1.json"}
    with pytest.raises(Stopped):
        apply(plan(d / "journal.jsonl", policy(compress=1), NOW), should_stop=lambda: True)
    assert src.read_bytes() == body


def test_one_pruner_at_a_time(tmp_path: Path) -> None:
    d = tmp_path / "data"
    make_dir(d, {1: 10})
    with _DirLock(d):  # e.g. the daemon's hourly run
        with pytest.raises(RetentionBusy):
            prune(d / "journal.jsonl", d / "snapshot.json", policy(compress=1), NOW)
        r = subprocess.run([str(CLI), "prune", "--config", str(write_cfg(tmp_path, d, "compress_after_days = 1"))],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 2 and "another process is applying the retention policy" in r.stderr
    assert (d / "journal.1.jsonl").exists()


def test_part_numbers_never_reuse_a_compressed_or_deleted_number(tmp_path: Path) -> None:
    d = tmp_path / "data"
    make_dir(d, {1: 10, 2: 10}, gz=(1,))
    (d / "journal.2.jsonl").unlink()  # deleted, its snapshot still there
    assert next_part_number(d / "journal.jsonl", d / "snapshot.json") == 3
    cfg = parse_config({"engine": {"data_dir": str(d), "recover": False, "fsync": "never"},
                        "executor": {"kind": "null"}})  # fmt: skip
    Daemon(cfg)._rotate_previous()
    assert (d / "journal.3.jsonl").exists() and (d / "snapshot.3.json").exists() and not (d / "journal.jsonl").exists()


def test_bad_values_are_refused_naming_the_field() -> None:
    for table, key in (({"compress_after_days": -1}, "retention.compress_after_days"),
                       ({"delete_after_days": float("nan")}, "retention.delete_after_days"),
                       ({"delete_after_days": float("inf")}, "retention.delete_after_days"),
                       ({"keep_parts": -1}, "retention.keep_parts"),
                       ({"keep_parts": 2.5}, "retention.keep_parts"),
                       ({"compress_after_days": "7d"}, "retention.compress_after_days"),
                       ({"keep": 3}, "retention.keep")):  # fmt: skip
        with pytest.raises(ConfigError) as e:
            parse_config({"retention": table}, "live.toml")
        assert str(e.value).startswith(f"live.toml: {key}: "), str(e.value)
    rc = parse_config({"retention": {"compress_after_days": 1, "delete_after_days": 30, "keep_parts": 0}}).retention
    assert (rc.compress_after_days, rc.delete_after_days, rc.keep_parts) == (1.0, 30.0, 0)


def write_cfg(tmp_path: Path, data_dir: Path, retention: str) -> Path:
    p = tmp_path / "prune.toml"
    p.write_text(f'[engine]\ndata_dir = "{data_dir}"\n\n[retention]\n{retention}\n')
    return p


def test_cli_prune_dry_run_then_for_real(tmp_path: Path) -> None:
    d = tmp_path / "data"
    now = time.time()
    d.mkdir()
    for n, age in ((1, 40), (2, 10), (3, 1)):
        p = d / f"journal.{n}.jsonl"
        p.write_bytes(b'{"ts":1,"source":"s","msg":1}\n' * 100)
        os.utime(p, (now - age * DAY, now - age * DAY))
    cfg = write_cfg(tmp_path, d, "compress_after_days = 7\ndelete_after_days = 30\nkeep_parts = 1")
    r = subprocess.run([str(CLI), "prune", "--config", str(cfg), "--dry-run"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"would delete {d / 'journal.1.jsonl'} ") and "delete_after_days = 30" in lines[0]
    assert lines[1].startswith(f"would compress {d / 'journal.2.jsonl'} -> {d / 'journal.2.jsonl.gz'}")
    assert len(lines) == 2 and (d / "journal.1.jsonl").exists()
    r = subprocess.run([str(CLI), "prune", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith(f"deleted {d / 'journal.1.jsonl'}")
    assert r.stdout.splitlines()[1].startswith(f"compressed {d / 'journal.2.jsonl'} -> ")
    assert {p.name for p in d.iterdir()} - {RETENTION_LOCK} == {"journal.2.jsonl.gz", "journal.3.jsonl"}
    r = subprocess.run([str(CLI), "prune", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(f"nothing to do in {d} ")


def session_cfg(d: Path, retention: dict[str, Any] | None = None, speed: float = 0) -> Any:
    return parse_config({
        "engine": {"data_dir": str(d), "recover": False, "fsync": "never"},
        "logging": {"level": "WARNING", "status_interval_s": 0},
        "executor": {"kind": "loopback"},
        "feeds": [{"kind": "player", "params": {"path": str(RECORDING), "speed": speed}}],
        "strategies": {"dip": {"class": "example_buy_below", "max_price": "0.49", "take_profit": "0.52"}},
        "retention": retention or {"compress_after_days": 0},
    })  # fmt: skip


def test_a_compressed_part_still_replays_faithfully(tmp_path: Path) -> None:
    d = tmp_path / "d"
    cfg = session_cfg(d)
    first = run_daemon(cfg)
    run_daemon(cfg)  # a fresh start: the first session is now journal.1.jsonl
    part = d / "journal.1.jsonl"
    plain = replay(part, cfg, mode="faithful")
    assert plain["divergences"] == 0 and plain["fills"] == first["fills"] > 0
    old = time.time() - 10 * DAY
    os.utime(part, (old, old))
    acts = prune(d / "journal.jsonl", d / "snapshot.json", cfg.retention.__class__(compress_after_days=7), time.time())
    assert [(a.kind, a.done) for a in acts] == [("compress", True)] and not part.exists()
    s = replay(d / "journal.1.jsonl.gz", cfg, mode="faithful")
    assert s["divergences"] == 0
    assert {k: s[k] for k in ("inputs", "intents", "orders", "fills", "pnl")} == \
        {k: plain[k] for k in ("inputs", "intents", "orders", "fills", "pnl")}  # fmt: skip


def test_the_daemon_applies_the_policy_when_it_starts(tmp_path: Path) -> None:
    d = tmp_path / "d"
    make_dir(d, {1: 100, 2: 10}, now=time.time())  # the daemon's clock is the wall clock
    (d / "journal.jsonl").unlink()  # no previous session to move aside this time
    (d / "snapshot.json").unlink()
    cfg = session_cfg(d, {"compress_after_days": 7, "delete_after_days": 60, "keep_parts": 1}, speed=1)

    async def main() -> None:
        dm = Daemon(cfg)
        async with anyio.create_task_group() as tg:
            tg.start_soon(dm.run)
            with anyio.fail_after(20):
                while not (d / "journal.2.jsonl.gz").exists() or (d / "journal.1.jsonl").exists():
                    await anyio.sleep(0.02)
            dm.request_stop()

    anyio.run(main)
    assert names(d) == {"journal.jsonl", "snapshot.json", "journal.2.jsonl.gz", "snapshot.2.json", "polybot.lock"}
    assert msgspec.json.decode((d / "snapshot.json").read_bytes())["journal_file"] == "journal.jsonl"
