"""Shared helpers for the tests that run ``polybot`` as a subprocess (daemon, recovery, replay)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "polybot"
RECORDING = REPO / "recordings" / "demo.jsonl.gz"

#: The demo's strategy instance (config/replay-demo.toml), as a TOML table.
DIP_TOML = """
[strategies.dip]
class = "example_buy_below"
max_price = "0.49"
take_profit = "0.52"
size = "10"
max_position = "40"
order_timeout_s = 5.0
"""


def demo_daemon_toml(data_dir: Path, *, speed: float = 1.0, engine: str = "", max_shares: str = "20",
                     extra: str = "") -> str:
    """A daemon config (TOML text) on the demo recording, played by the ``player`` feed at
    ``speed`` (0 = as fast as it goes), paper executor, a small risk chain, the dip strategy;
    ``engine`` adds lines to ``[engine]``, ``extra`` adds tables at the end."""
    return f"""
[engine]
data_dir = "{data_dir}"
recover = false
fsync = "never"
flush_interval_ms = 50
{engine}

[logging]
status_interval_s = 0

[executor]
kind = "paper"
params = {{ cash = "1000" }}

[risk]
chain = ["trading_state", "position_caps"]

[risk.validators.position_caps]
max_shares = "{max_shares}"

[[feeds]]
kind = "player"
name = "demo"
params = {{ path = "{RECORDING}", speed = {float(speed)} }}
{extra}
"""


def start_daemon(cfg: Path, tmp_path: Path, tag: str = "daemon") -> tuple[subprocess.Popen[bytes], Path]:
    """``polybot run --config cfg`` in the background; stderr goes to ``<tag>.stderr``."""
    err = tmp_path / f"{tag}.stderr"
    with open(err, "wb") as f:
        proc = subprocess.Popen([str(CLI), "run", "--config", str(cfg)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=f)
    return proc, err


def wait_for(pred: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes], err: Path, what: str) -> None:
    """Poll ``pred`` until true; fail early (with the daemon's log) if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited ({proc.returncode}) before {what}:\n{err.read_text()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{err.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes], err: Path) -> dict[str, Any]:
    """SIGTERM, expect a clean exit 0, return the JSON summary line from stdout (kills on failure)."""
    try:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{err.read_text()[-3000:]}"
    return json.loads(out.decode().strip().splitlines()[-1])
