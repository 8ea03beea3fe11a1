"""config/two-venues.toml: one market on the Polymarket CLOB and on Polymarket US, offline (both
simulators), the same strategy on each venue limited by ``venues``: the daemon runs it, each
instance trades only its own venue's asset, both venues' books stay healthy, and a faithful
replay of the session's journal reproduces it exactly."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

from polybot.config import load_config
from polybot.replay import replay
from proc_helpers import CLI, REPO

CONFIG = REPO / "config" / "two-venues.toml"
CLOB_YES = "110213509559862322364670139948458005981432023457717332003253175382940230657834"
US_LONG = "pmus:sim-market-0:long"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(tmp_path: Path) -> Path:
    text = CONFIG.read_text()
    clob, us = _free_port(), _free_port()
    for pat, rep, n_min in ((r'(?m)^data_dir = "[^"]*"', f'data_dir = "{tmp_path / "data"}"', 1),
                            (r"(?m)^run_for_s = 0", "run_for_s = 6", 1), (r"(?m)^port = 8321", "port = 0", 1),
                            (r"\b8765\b", str(clob), 4), (r"\b8766\b", str(us), 4)):  # fmt: skip
        text, n = re.subn(pat, rep, text)
        assert n >= n_min, f"config/two-venues.toml changed shape: {pat!r} matched {n} times"
    p = tmp_path / "two-venues.toml"
    p.write_text(text)
    return p


def test_the_same_market_on_two_venues_one_strategy_instance_each(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    r = subprocess.run([str(CLI), "run", "--config", str(cfg)], cwd=tmp_path, capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    summary = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert summary["dropped"] == 0 and summary["books"]["total"] == 4 and summary["books"]["healthy"] == 4
    assert summary["risk_rejections"] == {}
    journal = tmp_path / "data" / "journal.jsonl"
    by_strategy: dict[str, set[str]] = {}
    sources: set[str] = set()
    for line in journal.read_text().splitlines():
        rec = json.loads(line)
        sources.add(rec.get("source", ""))
        ev = rec.get("event")
        if ev and ev.get("type") == "order_filled":
            by_strategy.setdefault(ev["strategy"], set()).add(ev["asset_id"])
    assert {"polymarket.market", "polymarket.gamma", "polymarket_us.market", "polymarket_us.rest"} <= sources
    # each instance traded, and only its own venue's asset
    assert by_strategy == {"dip_clob": {CLOB_YES}, "dip_us": {US_LONG}}
    s = replay(journal, load_config(cfg), mode="faithful")
    assert s["divergences"] == 0 and s["fills"] == summary["fills"] > 0
