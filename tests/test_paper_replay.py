"""What-if replay on the paper executor, end to end: a recorded Polymarket session (from the
simulator, hash-verified) replayed with a quoting strategy gives the same fills and PnL in two
processes, the figures appear in ``replay --json``, and the replay's own journal replays
faithfully."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SESSION = ROOT / "recordings" / "sim-session.jsonl.gz"
POLYBOT = str(Path(sys.executable).parent / "polybot")
CONFIG = """
[executor]
kind = "paper"
params = { cash = "500", latency_ms = 25 }

[strategies.q]
class = "paper_quoter:Quoter"
"""


def _replay(tmp: Path, name: str, seed: str, *extra: str) -> tuple[dict, bytes]:
    cfg = tmp / "q.toml"
    cfg.write_text(CONFIG)
    out = tmp / f"{name}.jsonl"
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT / "tests"))
    r = subprocess.run([POLYBOT, "replay", str(SESSION), "--config", str(cfg), "--json", "--out", str(out), *extra],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), out.read_bytes()


def test_what_if_replay_is_identical_in_two_processes(tmp_path: Path) -> None:
    a, ja = _replay(tmp_path, "a", "1")
    b, jb = _replay(tmp_path, "b", "4242")
    assert ja == jb  # every order, fill, fee and position line, byte for byte
    for k in ("report", "pnl", "positions", "fills", "orders"):
        assert a[k] == b[k]
    t = a["report"]["totals"]
    # the session really traded: maker fills from the queue, taker fills from the modes' exits
    assert t["fills"] == a["fills"] > 20 and t["maker_fills"] > 0 and t["taker_fills"] > 0
    assert t["orders_cancelled"] > 0 and t["rebates"] > 0 and t["fees"] > 0
    assert t["net_pnl"] == t["realized_pnl"] + t["unrealized_pnl"] - t["fees"] + t["rebates"]
    assert 0 < t["max_drawdown"] and t["cash"] != t["starting_cash"]
    assert set(a["report"]["per_strategy"]) == {"q"} and len(a["report"]["per_market"]) == 3
    fills = [json.loads(x)["event"] for x in ja.splitlines() if b'"order_filled"' in x or b'"order_partial"' in x]
    assert len(fills) == t["fills"]
    assert sum(f.get("fee", 0) for f in fills) == t["fees"]


def test_the_replays_own_journal_replays_faithfully(tmp_path: Path) -> None:
    _a, _ja = _replay(tmp_path, "a", "1")
    cfg = tmp_path / "q.toml"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests"))
    r = subprocess.run([POLYBOT, "replay", str(tmp_path / "a.jsonl"), "--config", str(cfg), "--mode", "faithful", "--json"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)  # fmt: skip
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and s["divergences"] == 0, s.get("divergence_examples")
    assert s["fills"] == _a["fills"]


def test_risk_decisions_are_in_the_journal_and_in_replay_json(tmp_path: Path) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text(CONFIG + """
[risk]
chain = ["trading_state", "data_health", "exchange_rules", "notional_caps", "position_caps"]

[risk.validators.notional_caps]
per_market = "6"

[risk.validators.position_caps]
max_shares = "20"
""")
    out = tmp_path / "r.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests"))
    r = subprocess.run([POLYBOT, "replay", str(SESSION), "--config", str(cfg), "--json", "--out", str(out)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout.strip().splitlines()[-1])
    by = s["report"]["totals"]["rejected_by_validator"]
    lines = [json.loads(x)["event"] for x in out.read_bytes().splitlines() if b'"risk_' in x]
    journal_by: dict[str, int] = {}
    for e in lines:
        if e["type"] == "risk_rejected":
            journal_by[e["validator"]] = journal_by.get(e["validator"], 0) + len(e["client_ids"])
    assert by == journal_by and sum(by.values()) == s["rejections"] > 0
    assert any(e["type"] == "risk_resized" for e in lines)  # the caps resized some orders
    assert all(e.get("reason") for e in lines if e["type"] != "risk_approved")
