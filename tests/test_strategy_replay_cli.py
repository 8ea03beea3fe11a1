"""Strategy registry and params, replay modes and summary, and the CLI surface."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from polybot.config import ConfigError, parse_config
from polybot.events import ENCODER, BookDelta, BookSnapshot
from polybot.replay import replay
from polybot.strategy import Strategy, StrategyParams, Units, convert_params, installed_strategies, load_strategy_class, on
from polybot.wiring import build_kernel

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recordings" / "demo.jsonl.gz"
POLYBOT = str(Path(sys.executable).parent / "polybot")
DIP = {"class": "example_buy_below", "max_price": "0.49", "take_profit": "0.52"}


def cli(*args: str, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    return subprocess.run([POLYBOT, *args], capture_output=True, text=True, timeout=120, **kw)


# ------------------------------------------------------------------------------ strategies


def test_registry_by_entry_point_and_by_path():
    assert "example_buy_below" in installed_strategies()
    a = load_strategy_class("example_buy_below")
    b = load_strategy_class("strategies.example:BuyBelow")
    assert a is b
    with pytest.raises(LookupError):
        load_strategy_class("no_such_strategy")
    with pytest.raises(TypeError):
        load_strategy_class("polybot.events:Event")


def test_units_params_are_exact():
    class P(StrategyParams):
        price: Units
        size: Units = Units(1_000_000)

    p = convert_params(P, {"price": 0.45, "size": "12.5"})
    assert p.price == 450_000 and p.size == 12_500_000
    assert convert_params(P, {"price": "0.1"}).price == 100_000
    assert convert_params(P, {"price": 1}).price == 1_000_000
    for bad in ({"price": "abc"}, {"price": "0.1234567"}, {"price": True}, {"price": 0.45, "oops": 1}):
        with pytest.raises(msgspec.ValidationError):
            convert_params(P, bad)


def test_config_names_the_strategy_key_on_a_bad_param():
    cfg = parse_config({"strategies": {"dip": {**DIP, "max_price": "zero"}}}, "my.toml")
    with pytest.raises(ConfigError, match=r"my.toml: strategies.dip.max_price"):
        build_kernel(cfg)
    cfg = parse_config({"strategies": {"dip": {**DIP, "nope": 1}}}, "my.toml")
    with pytest.raises(ConfigError, match=r"strategies.dip.nope: unknown key"):
        build_kernel(cfg)
    cfg = parse_config({"strategies": {"dip": {"class": "nope.module:X"}}}, "my.toml")
    with pytest.raises(ConfigError, match=r"strategies.dip.class"):
        build_kernel(cfg)
    with pytest.raises(ConfigError, match=r"risk.chain: unknown validator"):
        build_kernel(parse_config({"risk": {"chain": ["nope"]}}, "my.toml"))


def test_on_decorator_subscribes_with_keys():
    got = []

    class S(Strategy):
        name = "s"

        class Params(StrategyParams):
            assets: list[str]

        @on(BookSnapshot, BookDelta, key_param="assets")
        def handle(self, ev) -> None:  # noqa: ANN001
            got.append(ev.asset_id)

    from polybot.kernel import Kernel

    k = Kernel()
    k.add_strategy(S, "s", {"assets": ["a", "b"]})
    k.start()
    for asset in ("a", "b", "c"):
        k.process(1, "events", ENCODER.encode(BookSnapshot(asset_id=asset)))
    assert got == ["a", "b"]


# ------------------------------------------------------------------------------ replay


def test_what_if_replay_summary_and_determinism(tmp_path):
    cfg = parse_config({"strategies": {"dip": DIP}})
    s1 = replay(DEMO, cfg, out=tmp_path / "a.jsonl")
    s2 = replay(DEMO, cfg, out=tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert s1["intents"] > 0 and s1["orders"] == s1["intents"] - s1["rejections"]
    assert s1["events_by_type"]["book_delta"] == 6000
    assert s1["errors"] == {}
    for key in ("events_by_type", "events_per_s", "intents", "orders", "fills", "pnl", "errors"):
        assert key in s2
    f = replay(tmp_path / "a.jsonl", cfg, mode="faithful")
    assert f["divergences"] == 0 and f["intents"] == s1["intents"]


def test_strategy_filter_runs_only_named_instances():
    cfg = parse_config({"strategies": {"dip": DIP, "dip2": {**DIP, "enabled": True}}})
    s = replay(DEMO, cfg, strategies=["dip"])
    both = replay(DEMO, cfg)
    assert 0 < s["intents"] < both["intents"]
    none = replay(DEMO, parse_config({}))
    assert none["intents"] == 0
    by_name = replay(DEMO, parse_config({}), strategies=["example_buy_below"])
    assert by_name["intents"] > 0 and by_name["inputs"] > none["inputs"]  # + its journaled timer ticks


def test_bare_frames_with_clamped_times_and_gz(tmp_path):
    lines = [
        ENCODER.encode(BookSnapshot(ts=300, asset_id="a", bids=((400_000, 1_000_000),), asks=((500_000, 1_000_000),))),
        b"PONG",
        ENCODER.encode(BookDelta(ts=200, asset_id="a", side="BID", price=410_000, size=1_000_000)),  # earlier: clamped
        b"{torn",
    ]
    p = tmp_path / "bare.jsonl.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"\n".join(lines))
    seen = []

    def bare_ts(msg: bytes):  # noqa: ANN202
        try:
            return msgspec.json.decode(msg).get("ts")
        except (msgspec.DecodeError, AttributeError):
            return None

    import polybot.replay as rp

    orig = rp.bare_ts_for
    rp.bare_ts_for = lambda name: bare_ts  # the events source has no bare clock of its own
    try:
        s = replay(p, parse_config({}), bare_source="events", on_kernel=lambda k: k.bus.subscribe(BookDelta, seen.append))
    finally:
        rp.bare_ts_for = orig
    assert s["read"]["bare"] == 3 and s["read"]["torn"] == 1
    assert s["errors"]["clock_clamped"] == 1
    assert s["errors"]["events:schema"] == 1  # the PONG text frame (a JSON string) is not an event
    assert seen[0].ts == 300


# ------------------------------------------------------------------------------ CLI


def test_help_and_version():
    r = cli("--help")
    assert r.returncode == 0 and "replay" in r.stdout and "faithful" in r.stdout
    r = cli("replay", "--help")
    assert r.returncode == 0 and "--mode" in r.stdout
    assert cli("version").stdout.startswith("polybot ")


def test_replay_json_last_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[strategies.dip]\nclass = "example_buy_below"\nmax_price = "0.49"\ntake_profit = "0.52"\n')
    r = cli("replay", str(DEMO), "--config", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["intents"] > 0 and summary["mode"] == "what-if"
    human = cli("replay", str(DEMO), "--config", str(cfg))
    assert "intents" in human.stdout and "pnl" in human.stdout


def test_cli_refuses_bad_config_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[engine]\nqueue_size = \"many\"\n")
    r = cli("replay", str(DEMO), "--config", str(cfg))
    assert r.returncode == 2
    assert "bad.toml: engine.queue_size: expected int, got str" in r.stderr
    r = cli("replay", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_strategies_lists_params_and_defaults():
    r = cli("strategies", "--json")
    info = json.loads(r.stdout)["example_buy_below"]
    assert info["params"]["max_price"]["default"] == "0.45"
    assert "max_price" in cli("strategies").stdout


def test_cancels_a_strategy_sends_on_stop_replay_faithfully(tmp_path):
    """Spread capture cancels its quotes in on_stop: those cancels are the session's last engine
    events, and a faithful replay of the session's journal reproduces them (no divergence)."""
    from pathlib import Path

    from polybot.config import load_config
    from polybot.replay import replay

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "config" / "spread_capture.toml")
    out = tmp_path / "sc.jsonl"
    a = replay(root / "recordings" / "spread-capture.jsonl.gz", cfg, out=out)
    assert b'"cancel_submitted"' in out.read_bytes().splitlines()[-1]  # the on_stop cancel is last
    b = replay(out, cfg, mode="faithful")
    assert b["divergences"] == 0, b["divergence_examples"]
    assert b["fills"] == a["fills"]
