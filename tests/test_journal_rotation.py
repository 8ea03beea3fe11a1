"""A long-running daemon's journal starts a new part at a snapshot boundary ([engine] rotate_mb):
the parts replay, recovery continues from the newest part, and a rotation cut short by a crash
loses nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec

from polybot.config import parse_config
from polybot.daemon import Daemon
from polybot.recovery import read_snapshot
from polybot.replay import replay

from proc_helpers import DIP_TOML, demo_daemon_toml


def config(tmp_path: Path, *, rotate_mb: float, recover: bool = True) -> Any:
    text = demo_daemon_toml(tmp_path / "data", speed=0, max_shares="40", extra=DIP_TOML,
                            engine=f"snapshot_every = 300\nrotate_mb = {rotate_mb}")
    text = text.replace("recover = false", f"recover = {'true' if recover else 'false'}", 1)
    return parse_config(msgspec.toml.decode(text.encode()), str(tmp_path / "c.toml"))


def run(cfg: Any) -> tuple[Daemon, dict[str, Any]]:
    d = Daemon(cfg)
    out = anyio.run(d.run)
    return d, out


def test_parts_rotate_at_snapshots_and_each_replays(tmp_path: Path) -> None:
    cfg = config(tmp_path, rotate_mb=0.2)
    d, out = run(cfg)
    data = tmp_path / "data"
    parts = sorted(data.glob("journal.*.jsonl"), key=lambda p: int(p.name.split(".")[1]))
    assert len(parts) >= 2, sorted(p.name for p in data.iterdir())
    for p in parts:
        n = p.name.split(".")[1]
        assert (data / f"snapshot.{n}.json").exists()
        assert 0.2e6 <= p.stat().st_size < 1.5e6
    # the first part replays faithfully (a session's start); the snapshot kept with each part is
    # the state the next part starts from
    first = replay(parts[0], cfg, mode="faithful")
    assert first["divergences"] == 0
    snap = read_snapshot(data / "snapshot.json")
    assert snap is not None and snap.journal_file == "journal.jsonl"
    final = d.kernel.summary_state()
    # a restart continues from the newest part: the same state
    d2 = Daemon(cfg)
    d2.kernel.start()
    from polybot.recovery import recover

    recover(d2.kernel, d2.journal_path, d2.snapshot_path)
    assert d2.kernel.summary_state() == final
    assert out["fills"] > 0


def test_a_rotation_cut_short_by_a_crash_loses_nothing(tmp_path: Path) -> None:
    cfg = config(tmp_path, rotate_mb=0)
    d, _ = run(cfg)
    final = d.kernel.summary_state()
    data = tmp_path / "data"
    # the crash came right after the journal was renamed away: the snapshot names a journal
    # that is gone
    (data / "journal.jsonl").rename(data / "journal.1.jsonl")
    d2 = Daemon(cfg)
    d2.prepare()
    assert d2.kernel.summary_state() == final
    # ... and the first snapshot after recovery already points at the new journal, so a second
    # crash before any input loses nothing either
    d2.kernel.journal.close()
    snap = read_snapshot(data / "snapshot.json")
    assert snap is not None and snap.journal_offset == 0
    d3 = Daemon(cfg)
    d3.prepare()
    assert d3.kernel.summary_state() == final
    d3.kernel.journal.close()


def test_rotate_mb_is_checked(tmp_path: Path) -> None:
    import pytest

    from polybot.config import ConfigError

    with pytest.raises(ConfigError, match="rotate_mb"):
        parse_config({"engine": {"rotate_mb": "big"}}, "c.toml")
