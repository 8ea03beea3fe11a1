"""The daemon as a process: a demo run to completion, clean shutdown on SIGTERM, the control
inbox (a halt reaches the running kernel, is journaled, blocks new orders and survives a
restart), config errors, and the CLI's help."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from proc_helpers import CLI, RECORDING, REPO, start_daemon, stop, wait_for

DEMO = REPO / "config" / "replay-demo.toml"


def demo_config(tmp_path: Path, *, speed: float, recover: bool = False, name: str = "demo.toml") -> Path:
    """config/replay-demo.toml with the data dir in ``tmp_path``, the recording by absolute path and the
    player's speed changed (everything else as shipped)."""
    text = DEMO.read_text()
    subs = [
        (r'(?m)^data_dir = "[^"]*"', f'data_dir = "{tmp_path / "data"}"'),
        (r'path = "recordings/demo\.jsonl\.gz"', f'path = "{RECORDING}"'),
        (r"speed = [0-9.]+", f"speed = {float(speed)}"),
        (r"(?m)^recover = \w+", f"recover = {'true' if recover else 'false'}"),
    ]
    for pat, rep in subs:
        text, n = re.subn(pat, lambda _m, rep=rep: rep, text)
        assert n == 1, f"config/replay-demo.toml changed shape: {pat!r} matched {n} times"
    cfg = tmp_path / name
    cfg.write_text(text)
    return cfg


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)





def journal_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_bytes().splitlines()]


def n_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


# ------------------------------------------------------------------------------------------ (a)


def test_demo_runs_to_completion(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, speed=0)
    r = cli("run", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["fills"] > 0
    assert summary["orders"] >= summary["fills"]
    assert summary["inputs"] >= 3002
    assert summary["dropped"] == 0
    journal = tmp_path / "data" / "journal.jsonl"
    assert summary["journal"] == str(journal)
    body = journal.read_bytes()
    assert body.endswith(b"\n")
    assert b'"source":"exec.loopback"' in body and b'"type":"order_filled"' in body
    snap = json.loads((tmp_path / "data" / "snapshot.json").read_bytes())
    assert snap["journal_offset"] == len(body)


# ------------------------------------------------------------------------------------------ (b)


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, speed=5)  # 60 s of playback: it is stopped long before the end
    journal = tmp_path / "data" / "journal.jsonl"
    snapshot = tmp_path / "data" / "snapshot.json"
    proc, err = start_daemon(cfg, tmp_path)
    try:
        wait_for(lambda: n_lines(journal) >= 30, 15.0, proc, err, "30 journal lines")
        assert not snapshot.exists()  # snapshot_every = 500: the only snapshot is the final one
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    summary = stop(proc, err)
    assert summary["open_orders"] == 0
    body = journal.read_bytes()
    assert body.endswith(b"\n")
    assert snapshot.exists()
    snap = json.loads(snapshot.read_bytes())
    assert snap["journal_offset"] == len(body)
    assert snap["inputs"] == summary["inputs"]
    assert "received SIGTERM" in err.read_text()


# ------------------------------------------------------------------------------------------ (c)


def test_halt_through_control_inbox_blocks_orders_and_survives_restart(tmp_path: Path) -> None:
    # recover = true so that `polybot state` is what a restart would really see
    cfg = demo_config(tmp_path, speed=10, recover=True)
    journal = tmp_path / "data" / "journal.jsonl"
    proc, err = start_daemon(cfg, tmp_path)
    try:
        wait_for(lambda: n_lines(journal) >= 10, 15.0, proc, err, "the daemon to start journaling")
        r = cli("halt", "--config", str(cfg), "--reason", "test", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "data" / "control.jsonl").exists()

        def halted_at() -> int | None:
            for i, rec in enumerate(journal_lines(journal)):
                ev = rec.get("event")
                if rec["source"] == "engine" and ev["type"] == "trading_state" and ev["state"] == "halted":
                    return i
            return None

        wait_for(lambda: halted_at() is not None, 10.0, proc, err, "a trading_state halted engine event")

        def intent_after_halt() -> bool:
            recs = journal_lines(journal)
            return any(r.get("event", {}).get("type") == "intent" for r in recs[halted_at() or 0 :])

        # the strategy keeps trying (the demo's second buying window comes ~2.5 s in)
        wait_for(intent_after_halt, 15.0, proc, err, "an intent after the halt")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    stop(proc, err)

    recs = journal_lines(journal)
    h = halted_at()
    assert h is not None
    halt_ev = recs[h]["event"]
    assert halt_ev["previous"] == "active" and halt_ev["reason"] == "test"
    # the control command itself was journaled as an input before the engine reacted to it
    assert any(r["source"] == "control" and r["msg"]["type"] == "halt" for r in recs[:h])

    after = recs[h + 1 :]
    intents = [r["event"]["client_id"] for r in after if r.get("event", {}).get("type") == "intent"]
    assert intents
    rejected = {cid for r in after if r.get("event", {}).get("type") == "risk_rejected" for cid in r["event"]["client_ids"]}
    approved = {cid for r in after if r.get("event", {}).get("type") in ("risk_approved", "risk_resized")
                for cid in r["event"]["client_ids"]}  # fmt: skip
    submitted = [r["event"]["client_id"] for r in after if r.get("event", {}).get("type") == "order_submitted"]
    assert not approved, f"approved after the halt: {approved}"
    assert not submitted, f"orders submitted after the halt: {submitted}"
    assert set(intents) <= rejected
    assert all(r["event"]["validator"] == "trading_state" for r in after if r.get("event", {}).get("type") == "risk_rejected")

    # a halt survives a restart: the recovered state is still halted
    r = cli("state", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    st = json.loads(r.stdout.strip().splitlines()[-1])
    assert st["trading_state"] == "halted"


# ------------------------------------------------------------------------------------------ (d), (e)


def test_unknown_config_key_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[engine]\ndata_dir = "{tmp_path / "data"}"\nfoo = 1\n')
    r = cli("run", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 2
    assert str(cfg) in r.stderr
    assert "engine.foo" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "data").exists()


def test_help(tmp_path: Path) -> None:
    r = cli("--help", cwd=tmp_path)
    assert r.returncode == 0
    assert "replay" in r.stdout


def test_fresh_start_rotates_the_previous_journal(tmp_path: Path) -> None:
    """recover = false: each run gets its own journal, so every file replays faithfully."""
    from polybot.config import parse_config
    from polybot.daemon import run_daemon
    from polybot.replay import replay

    rec = str(Path(__file__).resolve().parents[1] / "recordings" / "demo.jsonl.gz")
    table = {
        "engine": {"data_dir": str(tmp_path / "d"), "recover": False, "fsync": "never"},
        "logging": {"level": "WARNING", "status_interval_s": 0},
        "executor": {"kind": "null"},
        "feeds": [{"kind": "player", "params": {"path": rec, "speed": 0}}],
        "strategies": {"dip": {"class": "example_buy_below", "max_price": "0.49", "take_profit": "0.52"}},
    }
    cfg = parse_config(table)
    first = run_daemon(cfg)
    second = run_daemon(cfg)
    assert first["intents"] == second["intents"] > 0
    d = tmp_path / "d"
    assert (d / "journal.1.jsonl").exists() and (d / "journal.jsonl").exists()
    for j in ("journal.1.jsonl", "journal.jsonl"):
        s = replay(d / j, cfg, mode="faithful")
        assert s["divergences"] == 0 and s["intents"] == first["intents"]
