"""`make run CONFIG=config/sports-demo.toml`: the shipped sports demo config, run by the CLI as a
user would (on a free port, a shorter game): every adapter connects to the simulator, the market
is linked to its game and bookmaker event, the strategy trades, nothing is dropped; then the
journal replays faithfully."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

from proc_helpers import CLI, REPO

DEMO = REPO / "config" / "sports-demo.toml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sports_demo_runs_offline_and_trades(tmp_path: Path) -> None:
    port = _free_port()
    text = DEMO.read_text()
    subs = [
        (r'(?m)^data_dir = "[^"]*"', f'data_dir = "{tmp_path / "data"}"'),
        (r"(?m)^run_for_s = 0 ", "run_for_s = 48 "),
        (r"game_seconds = \d+", "game_seconds = 30"),
        (r"pregame_s = \d+", "pregame_s = 10"),  # the odds feed polls before the tip (the prior)
        (r"market_lag_s = [0-9.]+", "market_lag_s = 4.0"),
    ]
    for pat, rep in subs:
        text, n = re.subn(pat, rep, text)
        assert n == 1, f"config/sports-demo.toml changed shape: {pat!r} matched {n} times"
    text = text.replace("8765", str(port))
    cfg = tmp_path / "sports-demo.toml"
    cfg.write_text(text)
    r = subprocess.run([str(CLI), "run", "--config", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["dropped"] == 0, r.stderr[-3000:]
    assert summary["orders"] >= 1 and summary["fills"] >= 1, r.stderr[-3000:]
    assert summary["books"]["hash_checks"]["failed"] == 0
    journal = tmp_path / "data" / "journal.jsonl"
    sources = {json.loads(line).get("source") for line in journal.read_text().splitlines()}
    assert {"sports.polymarket", "odds.theoddsapi", "polymarket.gamma", "polymarket.market"} <= sources
    assert "not linked" not in r.stderr.split("model solved")[-1]  # linked once the feeds spoke
    assert "demo" not in journal.read_text().replace("sports-demo", "")  # the placeholder key is not journaled
    rep = subprocess.run([str(CLI), "replay", str(journal), "--config", str(cfg), "--mode", "faithful"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert "divergences from the recorded run: 0" in rep.stdout, rep.stdout[-2000:]
