"""Crash recovery end to end: SIGKILL a running daemon, then check that snapshot + journal tail
rebuilds exactly the state a full replay of the journal gives, that a restart on the same data
dir continues cleanly, and that the whole journal (crash and restart included) still replays
faithfully with no divergence."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from proc_helpers import CLI, DIP_TOML, RECORDING, start_daemon, stop, wait_for


def write_config(tmp_path: Path, *, speed: float, snapshot_every: int = 200, executor: str = 'kind = "loopback"') -> Path:
    data = tmp_path / "data"
    cfg = tmp_path / "kill.toml"
    cfg.write_text(f"""
[engine]
data_dir = "{data}"
snapshot_every = {snapshot_every}
on_shutdown = "cancel"
recover = true

[logging]
level = "INFO"
status_interval_s = 1.0

[executor]
{executor}

[risk]
chain = ["trading_state"]

[[feeds]]
kind = "player"
name = "demo"
params = {{ path = "{RECORDING}", speed = {speed} }}

""" + DIP_TOML)
    return cfg





def cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"polybot {' '.join(args)} -> {r.returncode}\n{r.stderr[-3000:]}"
    return r


def state(cfg: Path, cwd: Path) -> dict[str, Any]:
    out = cli("state", "--config", str(cfg), cwd=cwd).stdout
    return json.loads(out.strip().splitlines()[-1])


def full_replay_state(cfg: Path, cwd: Path, snapshot: Path) -> dict[str, Any]:
    """The state rebuilt from the whole journal: ``polybot state`` with the snapshot moved away."""
    aside = snapshot.with_name("snapshot.aside")
    shutil.move(snapshot, aside)
    try:
        return state(cfg, cwd)
    finally:
        shutil.move(aside, snapshot)


def in_process_replay_state(journal: Path, cfg_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Faithful replay of the whole journal in this process; the kernel's summary state at the end."""
    from polybot.config import load_config
    from polybot.replay import replay

    kernels: list[Any] = []
    summary = replay(journal, load_config(cfg_path), mode="faithful", on_kernel=kernels.append)
    gc.collect()  # an executor left unclosed would surface here as an unraisable warning
    assert len(kernels) == 1
    return json.loads(json.dumps(kernels[0].summary_state())), summary


@pytest.mark.parametrize("executor", [
    'kind = "loopback"',  # asynchronous: its answers are journaled inputs
    'kind = "paper"\nparams = { cash = "200", latency_ms = 30 }',  # simulated: recomputed, state snapshotted
], ids=["loopback", "paper"])  # fmt: skip
def test_sigkill_recovery_restart_and_faithful_replay(tmp_path: Path, executor: str) -> None:
    cfg = write_config(tmp_path, speed=10.0, executor=executor)  # the recording lasts 300 s: ~30 s at speed 10
    data = tmp_path / "data"
    journal = data / "journal.jsonl"
    snapshot = data / "snapshot.json"

    # ---- run, then SIGKILL mid-session (after a snapshot, with fills in the journal)
    proc, err = start_daemon(cfg, tmp_path, "run1")
    try:
        def ready() -> bool:
            if not (journal.exists() and snapshot.exists()):
                return False
            body = journal.read_bytes()
            return body.count(b"\n") >= 300 and b'"order_filled"' in body

        wait_for(ready, 20.0, proc, err, "300 journal lines, a snapshot and a fill")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()

    size_at_kill = journal.stat().st_size
    snap = json.loads(snapshot.read_bytes())
    assert snap["journal_file"] == "journal.jsonl"
    # recovery really starts from the snapshot, and there is a tail after it to replay
    assert 0 < snap["journal_offset"] < size_at_kill
    assert snap["inputs"] >= 200

    # ---- (a) what a restart recovers: snapshot + journal tail
    recovered = state(cfg, tmp_path)
    # ---- (b) the uninterrupted state: the whole journal from scratch, twice, two ways
    full = full_replay_state(cfg, tmp_path, snapshot)
    replayed, summary = in_process_replay_state(journal, cfg)

    assert recovered["portfolio"]["positions"], f"nothing traded before the kill: {recovered}"
    assert summary["fills"] > 0
    assert recovered == full
    assert recovered == replayed
    # the crashed journal on its own replays faithfully (every engine line reproduced)
    assert summary["divergences"] == 0, summary["divergence_examples"]

    # ---- restart on the same config: recovers, keeps going, stops cleanly on SIGTERM
    lines_before = journal.read_bytes().count(b"\n")
    proc, err = start_daemon(cfg, tmp_path, "run2")
    try:
        wait_for(lambda: journal.read_bytes().count(b"\n") >= lines_before + 50, 15.0, proc, err,
                 "the restarted daemon to journal new inputs")
        time.sleep(0.5)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    summary_line = stop(proc, err)
    assert summary_line["journal"] == str(journal)

    body = journal.read_bytes()
    assert body.endswith(b"\n"), "torn last line after a clean shutdown"
    assert body.count(b"\n") > lines_before
    final_snap = json.loads(snapshot.read_bytes())
    assert final_snap["journal_offset"] == len(body), "the shutdown snapshot does not cover the whole journal"

    # the whole journal (first run, crash, restart) replays faithfully: the restarted kernel
    # continued from exactly the state a fresh replay reaches at the restart boundary
    r = cli("replay", str(journal), "--mode", "faithful", "--config", str(cfg), "--json",
            "--out", str(tmp_path / "faithful-out.jsonl"), cwd=tmp_path, check=False)
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["divergences"] == 0, json.dumps(rep["divergence_examples"], indent=1)
    assert r.returncode == 0
    assert rep["read"]["torn"] == 0 and rep["read"]["corrupt"] == 0

    # and after the clean stop, snapshot (+ empty tail) and a full replay agree as well
    assert state(cfg, tmp_path) == full_replay_state(cfg, tmp_path, snapshot)
