"""The path for writing your own strategy, proven end to end: the example package in
docs/example-strategy is installed (offline, like `pip install` would), `polybot strategies`
lists it by name with its parameters, and a config that names it replays a recorded session
through the paper executor, with the same result twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SESSION = ROOT / "recordings" / "sim-session.jsonl.gz"
CONFIG = """
[executor]
kind = "paper"
params = { cash = "500", latency_ms = 20 }

[strategies.dip]
class = "fade"
edge = "0.01"
size = "10"
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run([str(BIN / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(target), str(ROOT / "docs" / "example-strategy")],
                       capture_output=True, text=True, timeout=180)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return target


def _env(site: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(site))


def test_installed_strategy_is_listed_by_name(site: Path) -> None:
    r = subprocess.run([str(BIN / "polybot"), "strategies", "--json"], capture_output=True, text=True, timeout=60,
                       env=_env(site), cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["fade"]
    assert info["class"] == "polybot_fade:Fade" and "dip" in info["doc"]
    assert info["params"]["edge"] == {"type": "Units", "default": "0.02", "required": False}


def test_a_config_naming_it_replays_a_session(site: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "fade.toml"
    cfg.write_text(CONFIG)
    runs = []
    for _ in range(2):
        r = subprocess.run([str(BIN / "polybot"), "replay", str(SESSION), "--config", str(cfg), "--json"],
                           capture_output=True, text=True, timeout=120, env=_env(site), cwd=ROOT)  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    a, b = runs
    t = a["report"]["totals"]
    assert set(a["report"]["per_strategy"]) == {"dip"}
    assert t["fills"] > 10 and t["taker_fills"] == t["fills"] and t["fees"] > 0  # it bought dips and sold
    assert t["net_pnl"] == t["realized_pnl"] + t["unrealized_pnl"] - t["fees"] + t["rebates"]
    assert a["report"] == b["report"]  # deterministic
