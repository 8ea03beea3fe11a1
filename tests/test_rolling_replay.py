"""A recording spanning four 5-minute BTC windows replayed with a [[rolling]] pair-cost table:
each window gets its own instance, started ahead of the window and stopped after its resolution,
its pairs merged and the rest redeemed; the session replays faithfully from its journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from polybot.config import load_config
from polybot.journal import ENGINE_EVENT, JournalReader
from polybot.replay import replay

REC = "recordings/rolling-btc-5m.jsonl.gz"
S = 1_000_000_000
STARTS = [1790100000, 1790100300, 1790100600, 1790100900]


def test_four_windows_roll_over_with_merges_and_redeems(tmp_path: Path) -> None:
    cfg = load_config("config/rolling.toml")
    kernels: list[Any] = []
    out = tmp_path / "j.jsonl"
    r = replay(REC, cfg, out=out, on_kernel=kernels.append)
    k = kernels[0]
    names = [f"gabagool/btc-updown-5m-{s}" for s in STARTS]
    assert sorted(r["report"]["per_strategy"]) == names
    assert k.rolling.started == 4 and k.rolling.stopped == 4 and not k.strategies  # all stopped
    events = [msgspec.json.decode(m) for kind, _t, _s, m in JournalReader(out) if kind == ENGINE_EVENT]
    for name, start in zip(names, STARTS):
        intents = [e["ts"] for e in events if e["type"] == "intent" and e["strategy"] == name]
        assert intents, name
        # started 60 s ahead of its window (lead_s), and quiet after its window's end
        assert (start - 60) * S <= min(intents) and max(intents) < (start + 300) * S
        assert r["report"]["per_strategy"][name]["fills"] > 0
    actions = [e for e in events if e["type"] == "position_action"]
    done = {e["action_id"] for e in events if e["type"] == "position_action_done"}
    assert {a["action_id"] for a in actions} == done  # every action confirmed (the paper chain)
    merges = [a for a in actions if a["action"] == "merge"]
    redeems = [a for a in actions if a["action"] == "redeem"]
    assert merges and all(a["strategy"] in names for a in merges)
    assert len({a["market"] for a in redeems}) == len(redeems) >= 3 and all(a["note"] == "rolling gabagool" for a in redeems)
    # everything ends in cash: no share left, cash = start + net PnL
    assert all(p.size == 0 for p in k.portfolio.positions.values())
    t = r["report"]["totals"]
    assert t["cash"] == t["starting_cash"] + t["net_pnl"]
    again = replay(out, cfg, mode="faithful")
    assert again["divergences"] == 0, again
