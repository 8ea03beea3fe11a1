"""Determinism across processes: the same recording, config and code give byte-identical output
journals whatever the hash seed; a replay's own journal replays faithfully (and reproduces itself
byte for byte); a tampered engine line is caught as a divergence."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from proc_helpers import CLI, DIP_TOML, RECORDING

CONFIG = """
[executor]
kind = "null"

[risk]
chain = ["trading_state"]
""" + DIP_TOML


def _replay_cmd(file: Path, cfg: Path, out: Path, *extra: str) -> list[str]:
    return [str(CLI), "replay", str(file), "--config", str(cfg), "--out", str(out), "--json", *extra]


def _summary(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def _engine_types(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in path.read_bytes().splitlines():
        rec = json.loads(line)
        if rec["source"] == "engine":
            t = rec["event"]["type"]
            counts[t] = counts.get(t, 0) + 1
    return counts


@pytest.fixture(scope="module")
def what_if(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path], list[dict[str, Any]]]:
    """Two what-if replays of the demo recording, in two processes with different hash seeds."""
    d = tmp_path_factory.mktemp("determinism")
    cfg = d / "null.toml"
    cfg.write_text(CONFIG)
    outs = [d / "out-seed1.jsonl", d / "out-seed12345.jsonl"]
    procs = []
    for seed, out in zip(("1", "12345"), outs):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        procs.append(subprocess.Popen(_replay_cmd(RECORDING, cfg, out), cwd=d, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    summaries = []
    for p in procs:
        so, se = p.communicate(timeout=60)
        assert p.returncode == 0, se[-3000:]
        summaries.append(_summary(so))
    return d, cfg, outs, summaries


def test_what_if_replays_are_byte_identical_across_hash_seeds(what_if: Any) -> None:
    _, _, (a, b), (sa, sb) = what_if
    assert a.read_bytes() == b.read_bytes()
    types = _engine_types(a)
    # the journals carry the engine's decisions, not just the inputs
    assert types.get("intent", 0) > 0
    assert types.get("risk_approved", 0) > 0
    assert types.get("order_submitted", 0) > 0
    assert types.get("order_accepted", 0) > 0
    assert sa["intents"] == types["intent"] > 0
    for k in ("inputs", "events", "events_by_type", "intents", "orders", "fills", "open_orders", "positions", "pnl"):
        assert sa[k] == sb[k], k


def test_faithful_replay_of_a_what_if_journal_reproduces_it(what_if: Any) -> None:
    d, cfg, (a, _), (sa, _) = what_if
    out = d / "faithful.jsonl"
    r = subprocess.run(_replay_cmd(a, cfg, out, "--mode", "faithful"), cwd=d, capture_output=True, text=True, timeout=60)
    s = _summary(r.stdout)
    assert s["divergences"] == 0, s["divergence_examples"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert s["read"]["engine_lines"] > 0
    assert s["intents"] == sa["intents"]
    assert out.read_bytes() == a.read_bytes()


def test_tampered_engine_line_is_a_divergence(what_if: Any) -> None:
    d, cfg, (a, _), _ = what_if
    lines = a.read_bytes().splitlines(keepends=True)
    idx = next(i for i, ln in enumerate(lines) if b'"source":"engine"' in ln and b'"type":"order_submitted"' in ln)
    rec = json.loads(lines[idx])
    price = rec["event"]["intent"]["price"]
    assert lines[idx].count(b'"price":%d' % price) == 1  # the price appears once, in the nested intent
    tampered_line = lines[idx].replace(b'"price":%d' % price, b'"price":%d' % (price - 10_000))
    assert tampered_line != lines[idx]
    tampered = d / "tampered.jsonl"
    tampered.write_bytes(b"".join(lines[:idx] + [tampered_line] + lines[idx + 1 :]))

    r = subprocess.run(_replay_cmd(tampered, cfg, d / "tampered-out.jsonl", "--mode", "faithful"),
                       cwd=d, capture_output=True, text=True, timeout=60)  # fmt: skip
    s = _summary(r.stdout)
    assert s["divergences"] >= 1
    assert r.returncode == 1
    ex = s["divergence_examples"][0]
    assert any(b'"price":%d' % (price - 10_000) in e.encode() for e in ex["expected"])
    assert any(b'"price":%d' % price in p.encode() for p in ex["produced"])
