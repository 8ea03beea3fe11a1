"""Logging: JSON lines (one object a line, bound fields as fields), the human format (colour only
on a terminal), the rotated file sink and its config checks, the CLI's global log options, and
the order lifecycle log (one line per step, with the client order id, never a secret)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from loguru import logger

from polybot.bus import Bus
from polybot.cli import build_parser, main
from polybot.config import ConfigError, load_config, load_secrets, parse_config
from polybot.events import (
    ENCODER,
    BookSnapshot,
    CancelSubmitted,
    Event,
    FeeSchedule,
    FillReversed,
    FillSettlement,
    HandlerError,
    MarketInfo,
    OrderAccepted,
    OrderAdopted,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderPartiallyFilled,
    OrderPlan,
    OrderRejected,
    OrderSigned,
    OrderStateError,
    OrderSubmitted,
    OrderUnknown,
    RiskApproved,
    RiskDecisionEvent,
    RiskRejected,
    RiskResized,
)
from polybot.logs import OrderLog, setup_logging
from polybot.wiring import build_executor, build_kernel

REPO = Path(__file__).resolve().parents[1]
U = 1_000_000
ANSI = "\x1b["


@pytest.fixture(autouse=True)
def _restore_loguru() -> Iterator[None]:
    """setup_logging replaces every sink: give the next tests loguru's default back."""
    yield
    logger.remove()
    logger.add(sys.stderr)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def parse_lines(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines and all(ln.startswith("{") and ln.endswith("}") for ln in lines), text
    return [json.loads(ln) for ln in lines]


# ------------------------------------------------------------------------------ formats


def test_json_mode_is_one_object_per_line_with_the_bound_fields() -> None:
    out = io.StringIO()
    setup_logging("DEBUG", json=True, stream=out)
    logger.bind(client_id="pb-7", strategy="pair_cost", asset_id="123").info("order {} filled", "pb-7")
    logger.bind(message="a bound field named like a core one").warning("two\nlines, {braces} and <red>tags</red>")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("it failed")
    logger.debug("debug too")
    recs = parse_lines(out.getvalue())
    assert len(recs) == 4  # a newline in a message or a traceback never splits a record
    first = recs[0]
    assert first["message"] == "order pb-7 filled" and first["level"] == "INFO"
    assert (first["client_id"], first["strategy"], first["asset_id"]) == ("pb-7", "pair_cost", "123")
    assert first["logger"] == __name__ and first["time"].endswith("Z") and "T" in first["time"]
    assert recs[1]["message"] == "two\nlines, {braces} and <red>tags</red>"
    assert recs[1]["extra_message"] == "a bound field named like a core one"
    assert "RuntimeError: boom" in recs[2]["exception"] and recs[2]["level"] == "ERROR"
    assert recs[3]["level"] == "DEBUG"
    assert ANSI not in out.getvalue()


def test_json_fields_of_any_type_are_encoded() -> None:
    out = io.StringIO()
    setup_logging("INFO", json=True, stream=out)
    logger.bind(path=Path("/x"), n=3, ok=True, nested={"a": [1, 2]}).info("values")
    (rec,) = parse_lines(out.getvalue())
    assert (rec["path"], rec["n"], rec["ok"], rec["nested"]) == ("/x", 3, True, {"a": [1, 2]})


def test_human_format_has_no_ansi_escapes_off_a_terminal() -> None:
    out = io.StringIO()
    setup_logging("INFO", stream=out)
    logger.warning("plain <green>text</green> {x}")
    text = out.getvalue()
    assert ANSI not in text
    assert "WARNING" in text and "plain <green>text</green> {x}" in text
    assert text.count("\n") == 1 and text[:4].isdigit()  # the date leads a plain line


def test_human_format_is_coloured_on_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = Tty()
    setup_logging("INFO", stream=tty)
    logger.info("hello")
    assert ANSI in tty.getvalue() and "hello" in tty.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    tty = Tty()
    setup_logging("INFO", stream=tty)
    logger.info("hello")
    assert ANSI not in tty.getvalue() and "hello" in tty.getvalue()


def test_level_filters() -> None:
    out = io.StringIO()
    setup_logging("WARNING", json=True, stream=out)
    logger.info("not shown")
    logger.warning("shown")
    assert [r["message"] for r in parse_lines(out.getvalue())] == ["shown"]


def test_tracebacks_never_show_local_variables() -> None:
    out = io.StringIO()
    setup_logging("INFO", stream=out)
    secret = "cred-" + "9f3a" * 5  # not in the source lines a traceback quotes

    def fail(api_secret: str) -> None:  # diagnose=True would print the argument's value
        raise ValueError(f"bad ({len(api_secret)} characters)")

    try:
        fail(secret)
    except ValueError:
        logger.exception("failed")
    assert "ValueError: bad (25 characters)" in out.getvalue()
    assert secret not in out.getvalue()


# ------------------------------------------------------------------------------ the file sink


def test_file_sink_writes_json_lines_and_rotates(tmp_path: Path) -> None:
    log = tmp_path / "polybot.log"
    err = io.StringIO()
    setup_logging("INFO", file=str(log), rotation="1 KB", retention=3, stream=err)
    for i in range(200):
        logger.bind(i=i).info("line {} with some padding to fill the file quickly", i)
    logger.remove()  # closes the file
    files = sorted(tmp_path.iterdir())
    rotated = [f for f in files if f != log]
    assert log.exists() and rotated, files  # the size was exceeded: older parts were renamed
    assert len(rotated) == 3  # retention: the three newest rotated parts are kept
    assert all(f.name.startswith("polybot.") and f.suffix == ".log" for f in files)
    for f in files:
        assert f.stat().st_size <= 1000  # a new part starts before a line would pass 1 KB
        assert all(isinstance(r["i"], int) for r in parse_lines(f.read_text()))
    last = parse_lines(log.read_text())[-1]
    assert last["i"] == 199
    assert ANSI not in err.getvalue() and err.getvalue().count("\n") == 200  # stderr: human lines


def test_file_sink_without_rotation_keeps_one_file(tmp_path: Path) -> None:
    log = tmp_path / "one.log"
    setup_logging("INFO", file=str(log), rotation="", retention="", stream=io.StringIO())
    for i in range(100):
        logger.info("line {} with some padding to fill the file quickly", i)
    logger.remove()
    assert [f.name for f in tmp_path.iterdir()] == ["one.log"]
    assert len(parse_lines(log.read_text())) == 100


@pytest.mark.parametrize("rotation", ["100 MB", "1 kb", "1.5 GiB", "500 B", "12 h", "1 day", "2 weeks", "30 min",
                                      "daily", "Weekly", "00:00", "23:59:30", ""])  # fmt: skip
def test_every_rotation_the_config_accepts_loguru_accepts(tmp_path: Path, rotation: str) -> None:
    lc = parse_config({"logging": {"file_rotation": rotation, "file_retention": "7 days"}}).logging
    setup_logging("INFO", file=str(tmp_path / "x.log"), rotation=lc.file_rotation, retention=lc.file_retention,
                  stream=io.StringIO())  # fmt: skip
    logger.info("ok")
    logger.remove()
    assert (tmp_path / "x.log").exists()


def test_rotation_units_are_bytes() -> None:
    # loguru reads "mb" as megabits: the config spells every size in bytes
    assert parse_config({"logging": {"file_rotation": "10 mb"}}).logging.file_rotation == "10 MB"
    assert parse_config({"logging": {"file_rotation": "1 kib"}}).logging.file_rotation == "1 KiB"


def test_defaults() -> None:
    lc = parse_config({}).logging
    assert (lc.file_rotation, lc.file_retention) == ("100 MB", 10)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"file_rotation": "1 parsec"}, "logging.file_rotation"),
        ({"file_rotation": "0 MB"}, "logging.file_rotation"),
        ({"file_rotation": "25:00"}, "logging.file_rotation"),
        ({"file_rotation": "fortnightly"}, "logging.file_rotation"),
        ({"file_rotation": 1000}, "logging.file_rotation"),
        ({"file_retention": 0}, "logging.file_retention"),
        ({"file_retention": "forever"}, "logging.file_retention"),
        ({"file_retention": 1.5}, "logging.file_retention"),
    ],
)
def test_a_bad_rotation_or_retention_is_refused_naming_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config({"logging": table}, "cfg.toml")
    msg = str(ei.value)
    assert msg.startswith(f"cfg.toml: {key}: "), msg
    assert "`" not in msg


def test_a_bad_rotation_in_a_config_file_refuses_to_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[logging]\nfile = "x.log"\nfile_rotation = "every so often"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: logging\.file_rotation: cannot rotate at 'every so often'"):
        load_config(cfg)
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "logging.file_rotation" in err and "every so often" in err
    assert not (tmp_path / "x.log").exists()


# ------------------------------------------------------------------------------ the CLI


def test_global_log_options_parse() -> None:
    p = build_parser()
    a = p.parse_args(["--log-json", "--log-file", "var/p.log", "replay", "f.jsonl"])
    assert (a.log_json, a.log_file) == (True, "var/p.log")
    a = p.parse_args(["--no-log-json", "run", "--config", "c.toml"])
    assert (a.log_json, a.log_file) == (False, None)
    a = p.parse_args(["record", "--out", "x.jsonl", "--assets", "1"])
    assert (a.log_json, a.log_file) == (None, None)  # unset: the config decides


def test_log_options_override_the_config_in_a_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cfg.toml"  # the demo's config says: human lines, no file
    cfg.write_text((REPO / "config" / "replay-demo.toml").read_text().replace('level = "INFO"', 'level = "INFO"\njson = false'))
    assert not load_config(cfg).logging.json and not load_config(cfg).logging.file
    log = tmp_path / "replay.log"
    rc = main(["--log-json", "--log-level", "INFO", "--log-file", str(log), "replay",
               str(REPO / "recordings" / "demo.jsonl.gz"), "--config", str(cfg), "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0
    assert json.loads(out.strip().splitlines()[-1])["inputs"] > 0  # the summary stays alone on stdout
    recs = parse_lines(err)
    assert recs and all(r["level"] in ("INFO", "WARNING") for r in recs)
    assert [r["message"] for r in parse_lines(log.read_text())] == [r["message"] for r in recs]


# ------------------------------------------------------------------------------ OrderLog, no kernel

CID = "pb-12"
ASSET = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def it(cid: str = CID, **kw: Any) -> OrderIntent:
    base: dict[str, Any] = dict(strategy="pair_cost", asset_id=ASSET, side="BUY", price=450_000, size=10 * U, client_id=cid)
    return OrderIntent(**{**base, **kw})


class Captured:
    """Every record of the order log, at every level."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.sink = logger.add(lambda m: self.records.append(m.record), level="TRACE",
                               filter=lambda r: r["name"] == "polybot.orders")  # fmt: skip

    def close(self) -> None:
        logger.remove(self.sink)

    @property
    def messages(self) -> list[str]:
        return [r["message"] for r in self.records]

    def of(self, cid: str) -> list[tuple[str, str]]:
        return [(r["extra"]["step"], r["level"].name) for r in self.records if r["extra"]["client_id"] == cid]


@pytest.fixture
def cap() -> Iterator[Captured]:
    c = Captured()
    yield c
    c.close()


def test_order_log_without_a_kernel_one_line_per_step(cap: Captured) -> None:
    bus = Bus()
    ol = OrderLog().attach(SimpleNamespace(bus=bus))
    fill = dict(client_id=CID, trade_id="0xtrade00000000000000001", side="BUY", price=450_000, liquidity="maker")
    steps: list[tuple[Event, str, str]] = [
        (it(), "", ""),  # kept for the risk line, not a line of its own
        (RiskApproved(strategy="pair_cost", client_ids=(CID,), reserved=4_500_000),
         "DEBUG", "order pb-12 [pair_cost] risk approved (reserved 4.5)"),
        (OrderSubmitted(client_id=CID, strategy="pair_cost", asset_id=ASSET, intent=it()),
         "INFO", "order pb-12 [pair_cost] submitted BUY 10 @ 0.45 asset 7132…2563 GTC"),
        # executors' reports that do not name the strategy or the asset: taken from the order
        (OrderSigned(client_id=CID, venue_order_id="0xabcdef0123456789abcdef", maker_amount=4_500_000,
                     taker_amount=10 * U),
         "DEBUG", "order pb-12 [pair_cost] signed maker 4.5 taker 10 venue=0xabcdef01…"),
        (OrderAccepted(client_id=CID, venue_order_id="0xabcdef0123456789abcdef"),
         "INFO", "order pb-12 [pair_cost] accepted venue=0xabcdef01…"),
        (OrderPartiallyFilled(size=4 * U, fee=10_000, leaves=6 * U, **fill),  # type: ignore[arg-type]
         "INFO", "order pb-12 [pair_cost] partial fill 4 @ 0.45 maker fee 0.01 (leaves 6)"),
        (FillSettlement(client_id=CID, trade_id="0xtrade00000000000000001", status="MINED"),
         "DEBUG", "order pb-12 [pair_cost] settlement MINED trade 0xtrad…000001"),
        (OrderFilled(size=6 * U, rebate=1_000, **{**fill, "trade_id": "t2"}),  # type: ignore[arg-type]
         "INFO", "order pb-12 [pair_cost] filled 6 @ 0.45 maker fee 0 rebate 0.001"),
        (FillReversed(client_id=CID, trade_id="t2", reason="FAILED"),
         "WARNING", "order pb-12 [pair_cost] fill reversed: trade t2 failed on chain (FAILED)"),
        (it("pb-13", strategy="mm", side="SELL", price=550_000, tif="GTD", post_only=True), "", ""),
        (RiskResized(strategy="mm", client_ids=("pb-13",), validator="sizing", reason="kelly", old_size=10 * U,
                     new_size=5 * U),
         "INFO", "order pb-13 [mm] risk resized by sizing: 10 -> 5: kelly"),
        (OrderSubmitted(client_id="pb-13", strategy="mm", asset_id="a2", intent=it("pb-13", strategy="mm", asset_id="a2",
                        side="SELL", price=550_000, size=5 * U, tif="GTD", post_only=True)),
         "INFO", "order pb-13 [mm] submitted SELL 5 @ 0.55 asset a2 GTD post-only"),
        (CancelSubmitted(client_id="pb-13", strategy="mm", asset_id="a2", reason="requote"),
         "DEBUG", "order pb-13 [mm] cancel requested (requote)"),
        (OrderCancelled(client_id="pb-13", reason="requote"), "INFO", "order pb-13 [mm] cancelled (requote)"),
        (OrderExpired(client_id="pb-14", strategy="mm", asset_id="a2"), "INFO", "order pb-14 [mm] expired"),
        (OrderRejected(client_id="pb-15", strategy="mm", asset_id="a2", reason="not enough balance"),
         "WARNING", "order pb-15 [mm] rejected by executor: not enough balance"),
        (OrderUnknown(client_id="pb-16", strategy="mm", asset_id="a2", reason="timeout"),
         "WARNING", "order pb-16 [mm] outcome unknown, to reconcile: timeout"),
        (OrderAdopted(client_id="pb-17", venue_order_id="0x17", filled=2 * U, intent=it("pb-17", strategy="reconcile")),
         "WARNING", "order pb-17 [reconcile] adopted from the venue: BUY 10 @ 0.45 asset 7132…2563 GTC (filled 2) venue=0x17"),
        (OrderStateError(client_id=CID, event_type="order_filled", from_state="filled", to_state="filled",
                         reason="order is done"),
         "WARNING", "order pb-12 [pair_cost] order_filled refused in state filled: order is done"),
        (OrderPlan(strategy="dutch", plan_id="plan-1", legs=(it("pb-20", strategy="dutch"), it("pb-21", strategy="dutch", asset_id="b"))),
         "", ""),
        (RiskRejected(strategy="dutch", client_ids=("pb-20", "pb-21"), plan_id="plan-1", validator="notional_caps",
                      reason="total 120 > 100"), "", ""),
    ]  # fmt: skip
    for ev, _, _ in steps:
        bus.publish(ev)
    expected = [(lvl, msg) for _, lvl, msg in steps if msg] + [
        ("WARNING", "order pb-20 [dutch] risk rejected by notional_caps: total 120 > 100 (BUY 10 @ 0.45 asset 7132…2563 GTC)"),
        ("WARNING", "order pb-21 [dutch] risk rejected by notional_caps: total 120 > 100 (BUY 10 @ 0.45 asset b GTC)"),
    ]  # fmt: skip
    assert [(r["level"].name, r["message"]) for r in cap.records] == expected
    assert ol.lines == len(expected) and ol.errors == 0
    # the bound fields: what a JSON line carries
    by_step = {r["extra"]["step"]: r["extra"] for r in cap.records if r["extra"]["client_id"] == CID}
    assert by_step["submitted"] == {"client_id": CID, "strategy": "pair_cost", "asset_id": ASSET, "step": "submitted",
                                    "side": "BUY", "price": "0.45", "size": "10", "tif": "GTC", "event_ts": 0}  # fmt: skip
    assert by_step["partial_fill"]["leaves"] == "6" and by_step["partial_fill"]["fee"] == "0.01"
    assert by_step["partial_fill"]["asset_id"] == ASSET  # from the order: the event did not say
    assert by_step["accepted"]["venue_order_id"] == "0xabcdef0123456789abcdef"  # whole in the fields
    rej = [r["extra"] for r in cap.records if r["extra"]["step"] == "risk_rejected"]
    assert [(e["validator"], e["plan_id"], e["asset_id"]) for e in rej] == [("notional_caps", "plan-1", ASSET),
                                                                          ("notional_caps", "plan-1", "b")]  # fmt: skip
    assert not ol._intents and set(ol._orders) == {"pb-17"}  # the adopted order is the one still open
    ol.close()
    bus.publish(OrderExpired(client_id="pb-17"))
    assert ol.lines == len(expected) and len(cap.records) == len(expected)


def test_order_log_json_lines_carry_the_order_fields() -> None:
    out = io.StringIO()
    setup_logging("INFO", json=True, stream=out)
    bus = Bus()
    OrderLog().attach(SimpleNamespace(bus=bus))
    bus.publish(OrderSubmitted(ts=5, client_id=CID, strategy="pair_cost", asset_id=ASSET, intent=it()))
    bus.publish(RiskApproved(strategy="pair_cost", client_ids=("pb-99",)))  # DEBUG: below INFO
    (rec,) = parse_lines(out.getvalue())
    assert rec["message"] == "order pb-12 [pair_cost] submitted BUY 10 @ 0.45 asset 7132…2563 GTC"
    assert rec["logger"] == "polybot.orders" and rec["level"] == "INFO"
    assert {k: rec[k] for k in ("client_id", "strategy", "asset_id", "step", "side", "price", "size", "tif", "event_ts")} == {
        "client_id": CID, "strategy": "pair_cost", "asset_id": ASSET, "step": "submitted", "side": "BUY",
        "price": "0.45", "size": "10", "tif": "GTC", "event_ts": 5}  # fmt: skip


def test_order_log_never_raises_into_the_bus(cap: Captured) -> None:
    bus = Bus()
    errors: list[HandlerError] = []
    bus.subscribe(HandlerError, errors.append)
    ol = OrderLog().attach(SimpleNamespace(bus=bus))
    with pytest.raises(RuntimeError):
        ol.attach(SimpleNamespace(bus=bus))
    bad = OrderFilled(client_id=CID, trade_id="t", side="BUY", price=None, size=U, liquidity="maker")  # type: ignore[arg-type]
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="ERROR", format="{name} {message}")
    try:
        bus.publish(bad)
        bus.publish(bad)
    finally:
        logger.remove(sink)
    assert errors == [] and bus.handler_errors == 0  # nothing reported as an event: the journal is untouched
    assert ol.errors == 2 and len(lines) == 1 and "order log could not log a OrderFilled" in lines[0]
    bus.publish(OrderExpired(client_id=CID, strategy="s"))
    assert cap.messages == ["order pb-12 [s] expired"]


# ------------------------------------------------------------------------------ OrderLog on a kernel

YES, NO, M = "yes-token-0001", "no-token-0002", "0xmarket"
PLANTED = {
    "POLYBOT_PRIVATE_KEY": "0x" + "7e" * 32,
    "POLYBOT_API_KEY": "planted-api-key-5f1c0a3e",
    "POLYBOT_API_SECRET": "planted-secret-c2lnbmF0dXJl",
    "POLYBOT_API_PASSPHRASE": "planted-passphrase-93ab",
}


def paper_kernel() -> Any:
    cfg = parse_config({
        "engine": {"fsync": "never", "recover": False, "client_id_prefix": "pb"},
        "executor": {"kind": "paper", "params": {"cash": "1000"}},
        "risk": {"chain": ["trading_state", "notional_caps"], "validators": {"notional_caps": {"per_order": "100"}}},
        "market_data": {"verify_books": False},
    })  # fmt: skip
    k = build_kernel(cfg, executor=build_executor(cfg))
    return cfg, k


def feed(k: Any, t: int, *evs: Any) -> None:
    k.process(t, "events", ENCODER.encode(list(evs)))


def run_session(k: Any) -> dict[str, str]:
    """A filled order, a risk-rejected one and a cancelled one, through the paper executor."""
    feed(k, 1_000, MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No"), fees=FeeSchedule(rate_ppm=70_000)))
    feed(k, 2_000, BookSnapshot(asset_id=YES, market=M, bids=((480_000, 100 * U),), asks=((500_000, 10 * U),),
                                tick_size=10_000))  # fmt: skip
    filled = k.submit("pair_cost", OrderIntent(strategy="", asset_id=YES, market=M, side="BUY", price=500_000,
                                               size=10 * U))  # fmt: skip
    resting = k.submit("pair_cost", OrderIntent(strategy="", asset_id=YES, market=M, side="BUY", price=450_000,
                                                size=10 * U))  # fmt: skip
    feed(k, 3_000, BookSnapshot(asset_id=YES, market=M, bids=((480_000, 90 * U),), asks=((520_000, 10 * U),)))
    k.process(4_000, "control", b'{"type":"halt","reason":"operator"}')
    refused = k.submit("pair_cost", OrderIntent(strategy="", asset_id=YES, market=M, side="BUY", price=450_000,
                                                size=10 * U))  # fmt: skip
    assert k.cancel("pair_cost", resting.client_ids[0], "requote")
    assert filled.approved and resting.approved and not refused.approved
    return {"filled": filled.client_ids[0], "rejected": refused.client_ids[0], "cancelled": resting.client_ids[0]}


def test_order_log_on_a_paper_kernel_one_line_per_step(cap: Captured) -> None:
    _, k = paper_kernel()
    seen: list[Event] = []
    k.bus.subscribe(OrderEvent, seen.append)
    k.bus.subscribe(RiskDecisionEvent, seen.append)
    ol = OrderLog().attach(k)
    ids = run_session(k)
    assert cap.of(ids["filled"]) == [("risk_approved", "DEBUG"), ("submitted", "INFO"), ("accepted", "INFO"),
                                     ("filled", "INFO")]  # fmt: skip
    assert cap.of(ids["rejected"]) == [("risk_rejected", "WARNING")]
    assert cap.of(ids["cancelled"]) == [("risk_approved", "DEBUG"), ("submitted", "INFO"), ("accepted", "INFO"),
                                        ("cancel_requested", "DEBUG"), ("cancelled", "INFO")]  # fmt: skip
    # exactly one line per lifecycle event on the bus, each beginning with its client id
    per_event = [(e.client_id if isinstance(e, OrderEvent) else e.client_ids[0]) for e in seen]  # type: ignore[attr-defined]
    assert [r["extra"]["client_id"] for r in cap.records] == per_event
    assert all(r["message"].startswith(f"order {r['extra']['client_id']} [pair_cost] ") for r in cap.records)
    msgs = dict(zip([(r["extra"]["client_id"], r["extra"]["step"]) for r in cap.records], cap.messages))
    f, c, x = ids["filled"], ids["cancelled"], ids["rejected"]
    assert msgs[(f, "submitted")] == f"order {f} [pair_cost] submitted BUY 10 @ 0.5 asset yes-…0001 GTC"
    assert msgs[(f, "filled")] == f"order {f} [pair_cost] filled 10 @ 0.5 taker fee 0.175"
    assert msgs[(x, "risk_rejected")].startswith(f"order {x} [pair_cost] risk rejected by trading_state: ")
    assert msgs[(x, "risk_rejected")].endswith("(BUY 10 @ 0.45 asset yes-…0001 GTC)")
    assert msgs[(c, "cancel_requested")] == f"order {c} [pair_cost] cancel requested (requote)"
    assert msgs[(c, "accepted")] == f"order {c} [pair_cost] accepted venue=paper-{c}"
    assert ol.errors == 0 and not ol._orders and not ol._intents


def test_order_log_changes_no_decision() -> None:
    _, k1 = paper_kernel()
    _, k2 = paper_kernel()
    OrderLog().attach(k2)
    lines1: list[bytes] = []
    lines2: list[bytes] = []
    k1.engine_sink, k2.engine_sink = lines1, lines2  # every journaled engine event
    run_session(k1)
    run_session(k2)
    assert lines1 == lines2 and lines1


def test_no_secret_reaches_the_logs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k_, v in PLANTED.items():
        monkeypatch.setenv(k_, v)
    human, js = io.StringIO(), io.StringIO()
    log = tmp_path / "p.log"
    setup_logging("TRACE", file=str(log), stream=human)
    cap = Captured()
    js_sink = logger.add(js, level="TRACE", format="{message}", serialize=True)  # loguru's own full record too
    cfg, k = paper_kernel()
    secrets = load_secrets(cfg)  # what a live daemon holds
    assert secrets.get("api_key") == PLANTED["POLYBOT_API_KEY"]
    logger.info("secrets loaded: {}", secrets)  # its repr masks the values
    OrderLog().attach(k)
    run_session(k)
    logger.remove(js_sink)
    cap.close()
    outputs = {"human": human.getvalue(), "serialized": js.getvalue(), "file": log.read_text(),
               "captured": "\n".join(f"{r['message']} {r['extra']}" for r in cap.records)}  # fmt: skip
    assert "submitted BUY 10 @ 0.5" in outputs["human"] and "risk rejected" in outputs["file"]
    for name, text in outputs.items():
        for v in PLANTED.values():
            assert v not in text, (name, v)
