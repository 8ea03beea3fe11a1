"""The ``polybot`` command. Imports are lazy so that ``polybot --help`` answers at once."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """\
polybot: an event-driven, replayable trading system for Polymarket.

Every input (market data, executor answers, timers, your commands) is journaled before it is
processed, so any session can be replayed exactly.

common tasks:
  polybot run --config config/demo.toml        run the daemon (offline demo)
  polybot replay FILE --config CFG --json      replay a recording, print a summary
  polybot replay FILE --mode faithful          check a live journal reproduces exactly
  polybot replay FILE --report out.html        ... and write an HTML report of the run
  polybot report JOURNAL --config CFG          HTML report of a live session's journal
  polybot halt --config CFG                    halt a running daemon (resume, flatten, ...)
  polybot strategies                           list installed strategies and their params
  polybot bench                                measure the engine's speed and memory
  polybot doctor --config CFG                  preflight checks before live trading
  polybot wallet status --config CFG           balances and approvals of the live wallet
  polybot prune --config CFG --dry-run         what the journal retention policy would do
"""


def _load_cfg(path: str | None) -> Any:
    from .config import Config, load_config

    return load_config(path) if path else Config()


def _fail(msg: str) -> int:
    sys.stderr.write(f"polybot: {msg}\n")
    return 2


def _setup_logging(a: argparse.Namespace, cfg: Any, level: str | None = None) -> None:
    """Logging from ``[logging]``, with the global options over it: ``--log-level`` (else
    ``level``, else the config's), ``--log-json``/``--no-log-json``, ``--log-file`` ("" = none)."""
    from .logs import setup_logging

    lc = cfg.logging
    as_json = getattr(a, "log_json", None)
    file = getattr(a, "log_file", None)
    setup_logging(getattr(a, "log_level", None) or level or lc.level, lc.json if as_json is None else as_json,
                  lc.file if file is None else file, lc.file_rotation, lc.file_retention)  # fmt: skip


def cmd_run(a: argparse.Namespace) -> int:
    from .daemon import run_daemon

    cfg = _load_cfg(a.config)
    if getattr(a, "dry_run", False):
        # sign and journal every order, send none (the executor's dry_run param)
        import msgspec

        cfg = msgspec.structs.replace(cfg, executor=msgspec.structs.replace(
            cfg.executor, params={**cfg.executor.params, "dry_run": True}))  # fmt: skip
    _setup_logging(a, cfg)
    summary = run_daemon(cfg)
    sys.stdout.write(_json(summary) + "\n")
    return 0


def cmd_record(a: argparse.Namespace) -> int:
    from .config import ConfigError, parse_config
    from .daemon import run_daemon

    if a.config:
        cfg = _load_cfg(a.config)
    else:
        split = lambda v: [x for s in v or [] for x in s.split(",") if x]  # noqa: E731
        params: dict[str, Any] = {"markets": split(a.markets), "assets": split(a.assets), "series": split(a.series)}
        if not any(params.values()):
            return _fail("record: name what to record: --markets, --assets or --series (or --config)")
        for k_, v in (("ws_url", a.ws_url), ("rest_url", a.rest_url), ("gamma_url", a.gamma_url)):
            if v:
                params[k_] = v
        try:
            cfg = parse_config({"engine": {"fsync": "never", "recover": False, "data_dir": a.data_dir},
                                "feeds": [{"kind": "polymarket", "name": "polymarket", "params": params}]})  # fmt: skip
        except ConfigError as exc:
            return _fail(str(exc))
    _setup_logging(a, cfg)
    summary = run_daemon(cfg, record_only=True, journal_path=a.out,
                         rotate_bytes=int(a.rotate_mb * 1e6), rotate_seconds=a.rotate_minutes * 60)  # fmt: skip
    sys.stdout.write(_json(summary) + "\n")
    return 0


def cmd_replay(a: argparse.Namespace) -> int:
    from .replay import replay

    cfg = _load_cfg(a.config)
    _setup_logging(a, cfg, "WARNING" if a.json else None)
    progress = sys.stderr.isatty() and not a.no_progress
    html = None
    if a.report:
        from .htmlreport import HtmlReport

        html = HtmlReport()
    s = replay(a.file, cfg, mode=a.mode, strategies=a.strategy or None, out=a.out,
               bare_source=a.source, progress=progress, verify_book=a.verify_book,
               import_format=a.import_format, on_report=html.attach if html else None)  # fmt: skip
    if html is not None:
        path = html.write(a.report, s, config=a.config or "")
    if a.json:
        sys.stdout.write(_json(s) + "\n")
    else:
        _print_summary(s)
    if html is not None:
        (sys.stderr if a.json else sys.stdout).write(f"{'polybot: ' if a.json else '  '}html report: {path}\n")
    if s.get("divergences"):
        return 1
    return 1 if a.verify_book and s.get("books", {}).get("failed") else 0


def cmd_report(a: argparse.Namespace) -> int:
    from .htmlreport import report_journal
    from .logs import setup_logging

    cfg = _load_cfg(a.config)
    setup_logging(a.log_level or "WARNING", cfg.logging.json)
    s, path = report_journal(a.journal, cfg, a.out, config=a.config or "")
    if s.get("divergences"):
        sys.stderr.write(f"polybot: warning: {s['divergences']} divergences from the recorded run "
                         "(is --config the session's config?); the report shows the replay's figures\n")  # fmt: skip
    sys.stdout.write(f"{path}\n")
    return 0


def _print_summary(s: dict[str, Any]) -> None:
    w = sys.stdout.write
    w(f"replayed {s['file']} ({s['mode']}): {s['inputs']:,} inputs, {s['events']:,} events "
      f"in {s['wall_s']:.2f} s ({s['events_per_s']:,} events/s)\n")  # fmt: skip
    w(f"  intents {s['intents']}, orders {s['orders']}, fills {s['fills']}, rejections {s['rejections']}, "
      f"open orders {s['open_orders']}, trading {s['trading_state']}\n")  # fmt: skip
    p = s["pnl"]
    w(f"  pnl: net {p['net']} = realized {p['realized']} + unrealized {p['unrealized']} - fees {p['fees']}"
      f" + rebates {p['rebates']}; cash {p['cash']}\n")  # fmt: skip
    rep = s.get("report")
    if rep:
        t = rep["totals"]
        w(f"  max drawdown {t['max_drawdown_str']}, volume {t['volume_str']} shares / {t['notional_str']} pUSD, "
          f"fills {t['fills']} ({t['maker_fills']} maker, {t['taker_fills']} taker), "
          f"cancelled {t['orders_cancelled']}, expired {t['orders_expired']}, rejected {t['orders_rejected']}\n")  # fmt: skip
        if t["rejected_by_validator"]:
            w("  risk rejections by validator: " + ", ".join(f"{k}={v}" for k, v in t["rejected_by_validator"].items()) + "\n")
        for title, sect in (("strategy", rep["per_strategy"]), ("market", rep["per_market"])):
            for name, r in sect.items():
                w(f"    {title} {name[:16]}: net {r['net_pnl_str']} (realized {r['realized_pnl_str']}, "
                  f"unrealized {r['unrealized_pnl_str']}, fees {r['fees_str']}, rebates {r['rebates_str']}), "
                  f"fills {r['fills']}, max drawdown {r['max_drawdown_str']}\n")  # fmt: skip
    if s["positions"]:
        w("  positions: " + ", ".join(f"{k[:12]}…={v}" for k, v in s["positions"].items()) + "\n")
    if s["errors"]:
        w("  errors: " + ", ".join(f"{k}={v}" for k, v in s["errors"].items()) + "\n")
    if "divergences" in s:
        w(f"  divergences from the recorded run: {s['divergences']}\n")
        for d in s["divergence_examples"]:
            w(f"    after input line {d['after_input_line']}:\n      expected {d['expected']}\n      produced {d['produced']}\n")
    w("  events by type: " + ", ".join(f"{k}={v}" for k, v in s["events_by_type"].items()) + "\n")
    bk = s.get("books")
    if bk:
        w(f"  book checks: {bk['passed']} passed, {bk['failed']} failed, {bk['bbo_mismatches']} best bid/ask mismatches, "
          f"{bk['resyncs']} resyncs\n")  # fmt: skip
        for aid, c in bk["assets"].items():
            health = "healthy" if c.get("healthy") else f"UNHEALTHY ({c.get('unhealthy_reason', '')})"
            w(f"    {aid[:16]}…  passed {c['passed']}  failed {c['failed']}  bbo {c['bbo_mismatch']}  "
              f"snapshots {c['snapshots']}  resyncs {c['resyncs']}  {health}\n")  # fmt: skip
        if bk["dropped"]:
            w("  dropped: " + ", ".join(f"{k}={v}" for k, v in bk["dropped"].items()) + "\n")


def cmd_state(a: argparse.Namespace) -> int:
    from .daemon import Daemon
    from .logs import setup_logging

    cfg = _load_cfg(a.config)
    setup_logging(a.log_level or "WARNING")
    d = Daemon(cfg)
    d.kernel.start()
    from .recovery import recover

    recover(d.kernel, d.journal_path, d.snapshot_path, cfg.replay.bare_source, repair=False)
    sys.stdout.write(_json(d.kernel.summary_state()) + "\n")
    return 0


def cmd_prune(a: argparse.Namespace) -> int:
    """Apply ``[retention]`` to the old journal parts in the data dir (as the daemon does hourly)."""
    import time
    from pathlib import Path

    from .recovery import SNAPSHOT_FILE
    from .retention import RetentionBusy, describe, prune

    cfg = _load_cfg(a.config)
    data_dir = Path(cfg.engine.data_dir)
    rc = cfg.retention
    try:
        actions = prune(data_dir / cfg.engine.journal_file, data_dir / SNAPSHOT_FILE, rc, time.time(), dry_run=a.dry_run)
    except RetentionBusy as exc:
        return _fail(f"prune: {exc}; try again later")
    for act in actions:
        sys.stdout.write(describe(act, a.dry_run) + "\n")
    if not actions:
        sys.stdout.write(f"nothing to do in {data_dir} (compress_after_days = {rc.compress_after_days:g}, "
                         f"delete_after_days = {rc.delete_after_days:g}, keep_parts = {rc.keep_parts})\n")  # fmt: skip
    return 1 if not a.dry_run and any(not act.done for act in actions) else 0


def cmd_control(a: argparse.Namespace) -> int:
    from .daemon import send_control

    cfg = _load_cfg(a.config)
    cmd: dict[str, Any] = {"type": a.command.replace("-", "_"), "origin": "cli", "reason": a.reason or ""}
    if a.command == "flatten" and a.max_slippage:
        from .units import to_units

        cmd["max_slippage"] = to_units(a.max_slippage)
    if a.command in ("enable", "disable"):
        cmd = {"type": "enable_strategy", "strategy": a.strategy, "enabled": a.command == "enable",
               "origin": "cli", "reason": a.reason or ""}  # fmt: skip
    path = send_control(cfg, cmd)
    sys.stdout.write(f"sent {cmd['type']} to the daemon's inbox {path}\n")
    return 0


def cmd_chain_action(a: argparse.Namespace) -> int:
    from .daemon import send_control
    from .units import to_units

    cfg = _load_cfg(a.config)
    cmd: dict[str, Any] = {"type": "chain_action", "action": a.command, "origin": "cli", "reason": a.reason or ""}
    if a.command == "convert":
        cmd["asset_ids"] = list(a.asset_ids)
    else:
        cmd["market"] = a.market
    if a.command != "redeem":
        try:
            amount = to_units(a.amount)
        except (ValueError, ArithmeticError):
            return _fail(f"--amount: not a number of shares: {a.amount!r}")
        if amount <= 0:
            return _fail(f"--amount: must be positive, not {a.amount}")
        cmd["amount"] = amount
        cmd["strategy"] = a.strategy
    path = send_control(cfg, cmd)
    sys.stdout.write(f"sent {a.command} to the daemon's inbox {path}; see its log or /api/status for the outcome\n")
    return 0


def cmd_strategies(a: argparse.Namespace) -> int:
    import msgspec

    from .strategy import installed_strategies, load_strategy_class

    out = {}
    for name, ref in sorted(installed_strategies().items()):
        try:
            cls = load_strategy_class(name)
        except Exception as exc:  # noqa: BLE001
            out[name] = {"class": ref, "error": str(exc)}
            continue
        params = {}
        for f in msgspec.structs.fields(cls.Params):
            if f.default is not msgspec.NODEFAULT:
                default = f.default
            elif f.default_factory is not msgspec.NODEFAULT:
                default = f.default_factory()  # a list or dict param: its empty (or given) default
            else:
                default = None
            params[f.name] = {"type": _fmt_type(f.type),
                              "default": _fmt_default(f.type, default), "required": f.required}  # fmt: skip
        out[name] = {"class": ref, "doc": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "", "params": params}
    if a.json:
        sys.stdout.write(_json(out) + "\n")
        return 0
    for name, info in out.items():
        sys.stdout.write(f"{name}  ({info['class']})\n")
        if info.get("doc"):
            sys.stdout.write(f"    {info['doc']}\n")
        for pn, p in info.get("params", {}).items():
            req = "required" if p["required"] else f"default {p['default']!r}"
            sys.stdout.write(f"    {pn}: {p['type']}  ({req})\n")
    return 0


def _fmt_type(typ: Any) -> str:
    """A param's type as written in Python: ``Units``, ``list[str]``, ``Literal['mid', 'micro']``."""
    if isinstance(typ, type) and not getattr(typ, "__args__", None):
        return typ.__name__
    return str(typ).replace("typing.", "").replace("polybot.strategy.", "")


def _fmt_default(typ: Any, v: Any) -> Any:
    from .strategy import Units
    from .units import from_units

    if typ is Units and isinstance(v, int):
        return from_units(v)
    return v


def cmd_bench(a: argparse.Namespace) -> int:
    from .bench import run_bench

    return run_bench(json_out=a.json, quick=a.quick)


def cmd_synth(a: argparse.Namespace) -> int:
    from .synthetic import binary_market_stream, write_stream

    n = write_stream(a.out, binary_market_stream(a.n, a.seed))
    sys.stdout.write(f"wrote {n} inputs to {a.out}\n")
    return 0


def cmd_sim(a: argparse.Namespace) -> int:
    from adapters.polymarket.sim import SimConfig, run_sim

    from .logs import setup_logging

    setup_logging(a.log_level or "INFO", bool(a.log_json), a.log_file or "")
    try:
        cfg = SimConfig(host=a.host, port=a.port, seed=a.seed, n_markets=a.markets, rate=a.rate,
                        tick_size=a.tick, recording=a.recording, speed=a.speed, chain_id=a.chain_id,
                        neg_risk=a.neg_risk, cash=a.cash, allowance=a.allowance,
                        heartbeat_timeout_s=a.heartbeat_timeout, geoblocked=a.geoblocked,
                        sports=a.sports, league=a.league, home=a.home, away=a.away, p0=a.p0,
                        game_seconds=a.game_seconds, market_lag_s=a.market_lag, seconds_delay=a.seconds_delay,
                        pregame_s=a.pregame, sports_loop=a.sports_loop, odds_quota=a.odds_quota)  # fmt: skip
    except ValueError as exc:
        return _fail(str(exc))
    try:
        return run_sim(cfg)
    except OSError as exc:  # e.g. the port is taken
        return _fail(f"sim: {exc}")


def _executor_module(cfg: Any, attr: str, kind: str | None = None, where: str = "executor") -> tuple[str, str]:
    """(module name, "") that the configured executor's class (or that of ``kind``) names in
    ``attr`` (its doctor or wallet module: polybot itself knows no adapter), or ("", the error
    to print)."""
    from .wiring import _by_name

    kind = kind or cfg.executor.kind
    try:
        cls = _by_name("polybot.executors", kind)
    except (LookupError, ImportError, ValueError, AttributeError) as exc:
        return "", f"{cfg.source_path or '<config>'}: {where}.kind: {exc}"
    return getattr(cls, attr, None) or "", ""


def cmd_doctor(a: argparse.Namespace) -> int:
    """Preflight checks of the configured executor: its class names a module in the class
    attribute ``doctor_module``; that module has ``async run_doctor(cfg, secrets, params)`` and
    ``format_report(checks)``."""
    import asyncio
    import importlib

    import msgspec

    from .config import ConfigError, SecretsConfig, load_secrets

    cfg = _load_cfg(a.config)
    # the default venue's executor, then each [executor.venues.<venue>] one (a router)
    members = [("executor", cfg.executor.kind, dict(cfg.executor.params))]
    members += [(f"executor.venues.{v}", vc.kind, dict(vc.params)) for v, vc in sorted(cfg.executor.venues.items())]
    try:
        secrets = load_secrets(cfg)
    except ConfigError:  # the doctor's secrets-file check says why; go on with the environment's
        secrets = load_secrets(msgspec.structs.replace(cfg, secrets=SecretsConfig()))
    failed = False
    for where, kind, params in members:
        module_name, err = _executor_module(cfg, "doctor_module", kind, where)
        if err:
            return _fail(err)
        if len(members) > 1:
            sys.stdout.write(f"== {where} ({kind})\n")
        if not module_name:
            sys.stdout.write(f"executor {kind!r} has no preflight checks (nothing to check before a paper or "
                             "replay run)\n")  # fmt: skip
            continue
        mod = importlib.import_module(module_name)
        checks = asyncio.run(mod.run_doctor(cfg, secrets, params))
        sys.stdout.write(mod.format_report(checks) + "\n")
        failed = failed or any(c.ok is False for c in checks)
    return 1 if failed else 0


def cmd_wallet(a: argparse.Namespace) -> int:
    """``polybot wallet status | approve | wrap AMOUNT``: the configured executor's class names its
    wallet module (class attribute ``wallet_module``), which has ``async run_wallet(cfg, secrets,
    params, command, amount=, yes=, dry_run=)``."""
    import asyncio
    import importlib

    from .config import load_secrets

    cfg = _load_cfg(a.config)
    module_name, err = _executor_module(cfg, "wallet_module")
    if err:
        return _fail(err)
    if not module_name:
        return _fail(f"executor {cfg.executor.kind!r} has no on-chain wallet (set [executor] kind = \"clob\" and its params)")
    mod = importlib.import_module(module_name)
    return int(asyncio.run(mod.run_wallet(cfg, load_secrets(cfg), dict(cfg.executor.params), a.wallet_cmd,
                                          amount=getattr(a, "amount", ""), yes=a.yes, dry_run=a.dry_run)))  # fmt: skip


def cmd_version(a: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("polybot")
    except PackageNotFoundError:
        v = "unknown (not installed)"
    sys.stdout.write(f"polybot {v}\n")
    return 0


def _json(obj: Any) -> str:
    import msgspec

    return msgspec.json.encode(obj).decode()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="polybot", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-level", help="TRACE, DEBUG, INFO, WARNING, ERROR (default: from config)")
    p.add_argument("--log-json", action=argparse.BooleanOptionalAction, default=None,
                   help="log JSON lines on stderr instead of the human format (default: config logging.json)")  # fmt: skip
    p.add_argument("--log-file", metavar="PATH",
                   help="also log JSON lines to PATH, rotated per logging.file_rotation/file_retention "
                        "(default: config logging.file; \"\" = none)")  # fmt: skip
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    r = sub.add_parser("run", help="run the daemon from a config file")
    r.add_argument("--config", required=True, help="TOML config (see config/demo.toml)")
    r.add_argument("--dry-run", action="store_true",
                   help="live executor: sign and journal every order, send none")  # fmt: skip
    r.set_defaults(fn=cmd_run)

    rp = sub.add_parser("replay", help="replay a recording or journal through the engine",
                        description="Replay a recording (journal envelopes or bare frames, .gz ok).")  # fmt: skip
    rp.add_argument("file", help="recording: .jsonl or .jsonl.gz")
    rp.add_argument("--config", help="TOML config: strategies, risk, executor (default: none)")
    rp.add_argument("--strategy", action="append", metavar="NAME",
                    help="run only this strategy instance from the config, or a registered strategy by name with default params (repeatable)")  # fmt: skip
    rp.add_argument("--mode", choices=["faithful", "what-if"], default="what-if",
                    help="faithful: reproduce a live journal exactly, recorded executor answers included; what-if (default): inputs only, simulated fills")  # fmt: skip
    rp.add_argument("--out", help="write the replay's own journal here")
    rp.add_argument("--json", action="store_true", help="end with one JSON line summarising the run")
    rp.add_argument("--source", help="source name of bare-frame lines (default: config replay.bare_source)")
    rp.add_argument("--no-progress", action="store_true", help="no progress line on a terminal")
    rp.add_argument("--verify-book", action="store_true",
                    help="check every book against the venue's hash and best bid/ask; report per asset")  # fmt: skip
    rp.add_argument("--import", dest="import_format", default="auto", choices=["auto", "journal", "received-at", "ws-session"],
                    help="format of a foreign capture (default: detected from the first line)")  # fmt: skip
    rp.add_argument("--report", metavar="PATH",
                    help="write a self-contained HTML report of the session (equity, drawdown, fills, rejections) here")  # fmt: skip
    rp.set_defaults(fn=cmd_replay)

    rpt = sub.add_parser("report", help="HTML report of a live session from its journal (replayed faithfully)",
                         description="Replay a session's journal faithfully (the recorded executor answers are "
                                     "used) and write a self-contained HTML report: totals, equity and drawdown, "
                                     "fills on the prices, per-strategy and per-market tables, rejections.")  # fmt: skip
    rpt.add_argument("journal", help="the session's journal (.jsonl or .jsonl.gz)")
    rpt.add_argument("--config", help="the session's TOML config (its strategies, risk and executor)")
    rpt.add_argument("--out", help="HTML file to write (default: the journal's name with .html)")
    rpt.set_defaults(fn=cmd_report)

    rc = sub.add_parser("record", help="record live Polymarket market data to a journal (no strategies)",
                        description="Record the market channel (and the catalog and REST snapshots it uses) in the "
                                    "journal format; replay it with `polybot replay`. Stop with Ctrl-C.")  # fmt: skip
    rc.add_argument("--markets", action="append", help="market slugs or condition ids, comma separated (repeatable)")
    rc.add_argument("--assets", action="append", help="token ids, comma separated (repeatable)")
    rc.add_argument("--series", action="append", help="recurring series, e.g. btc-updown-15m (repeatable)")
    rc.add_argument("--out", required=True, help="journal file to write (.jsonl or .jsonl.gz)")
    rc.add_argument("--rotate-mb", type=float, default=0, help="start a new part after this many MB (0 = never)")
    rc.add_argument("--rotate-minutes", type=float, default=0, help="start a new part after this many minutes (0 = never)")
    rc.add_argument("--config", help="record the feeds of this config instead of --markets/--assets")
    rc.add_argument("--ws-url", help="market WebSocket URL (default: Polymarket's; e.g. a local `polybot sim`)")
    rc.add_argument("--rest-url", help="CLOB REST URL (default: Polymarket's)")
    rc.add_argument("--gamma-url", help="Gamma URL (default: Polymarket's)")
    rc.add_argument("--data-dir", default="var/record", help="working directory for the recorder (default var/record)")
    rc.set_defaults(fn=cmd_record)

    st = sub.add_parser("state", help="print the state a restart would recover (positions, orders, risk state)")
    st.add_argument("--config", required=True)
    st.set_defaults(fn=cmd_state)

    pr = sub.add_parser("prune", help="compress and delete old journal parts per [retention] (the daemon does it hourly)",
                        description="Apply the config's [retention] policy to the old journal parts in engine.data_dir "
                                    "(journal.<n>.jsonl: gzip after compress_after_days, delete after "
                                    "delete_after_days, always keeping the newest keep_parts). The current journal "
                                    "and its snapshot are never touched. Exit 1 if an action failed.")  # fmt: skip
    pr.add_argument("--config", help="TOML config ([engine] data_dir, [retention]; default: built-in defaults)")
    pr.add_argument("--dry-run", action="store_true", help="print what would be done, do nothing")
    pr.set_defaults(fn=cmd_prune)

    for name, helptext in (("halt", "stop all new orders"), ("resume", "return to active trading"),
                           ("reduce", "only orders that shrink positions"), ("flatten", "cancel all, then close every position"),
                           ("cancel-all", "cancel every open order"), ("enable", "enable a strategy"),
                           ("disable", "disable a strategy")):  # fmt: skip
        c = sub.add_parser(name, help=f"control a running daemon: {helptext}")
        c.add_argument("--config", required=True)
        c.add_argument("--reason", default="")
        if name == "flatten":
            c.add_argument("--max-slippage", help="price slippage cap, e.g. 0.02")
        if name in ("enable", "disable"):
            c.add_argument("strategy", help="strategy instance name")
        c.set_defaults(fn=cmd_control, command=name)

    for name, helptext in (("merge", "merge YES+NO pairs of a market into collateral"),
                           ("split", "split collateral into YES+NO of a market"),
                           ("redeem", "redeem a resolved market's shares"),
                           ("convert", "neg-risk: convert NO shares into collateral + the other YESes")):  # fmt: skip
        c = sub.add_parser(name, help=f"on-chain, through a running daemon: {helptext}",
                           description=f"Ask the running daemon to {helptext}: a control input, checked against "
                                       "the portfolio like a strategy's request, journaled, then sent on chain by "
                                       "the executor; the portfolio moves when the chain confirms it.")  # fmt: skip
        c.add_argument("--config", required=True)
        c.add_argument("--reason", default="")
        if name == "convert":
            c.add_argument("asset_ids", nargs="+", help="the NO token ids to convert")
        else:
            c.add_argument("market", help="the market's condition id")
        if name != "redeem":
            c.add_argument("--amount", required=True, help="shares, e.g. 25 or 12.5")
            c.add_argument("--strategy", default="", help="whose shares (default: the account's, shared over the "
                                                            "strategies holding them)")  # fmt: skip
        c.set_defaults(fn=cmd_chain_action, command=name)

    ss = sub.add_parser("strategies", help="list installed strategies with their params and defaults")
    ss.add_argument("--json", action="store_true")
    ss.set_defaults(fn=cmd_strategies)

    b = sub.add_parser("bench", help="benchmark the engine (events/s, latency, memory)")
    b.add_argument("--json", action="store_true", help="end with one JSON object of all figures")
    b.add_argument("--quick", action="store_true", help="smaller workloads")
    b.set_defaults(fn=cmd_bench)

    sy = sub.add_parser("synth", help="write a seeded synthetic recording (one binary market)")
    sy.add_argument("out")
    sy.add_argument("--n", type=int, default=3000)
    sy.add_argument("--seed", type=int, default=7)
    sy.set_defaults(fn=cmd_synth)

    sm = sub.add_parser("sim", help="run a local Polymarket exchange simulator (market WS, REST, Gamma, "
                                    "trading, user WS)")
    sm.add_argument("--host", default="127.0.0.1")
    sm.add_argument("--port", type=int, default=8765, help="0 = any free port (default 8765)")
    sm.add_argument("--seed", type=int, default=1)
    sm.add_argument("--markets", type=int, default=3)
    sm.add_argument("--rate", type=float, default=20.0, help="walk events per second, all markets")
    sm.add_argument("--tick", default="0.01", choices=["0.01", "0.001"])
    sm.add_argument("--recording", help="replay this recording's frames instead of the random walk")
    sm.add_argument("--speed", type=float, default=1.0, help="recording pacing (0 = as fast as possible)")
    sm.add_argument("--chain-id", type=int, default=137, help="EIP-712 chain id of auth and orders (default 137)")
    sm.add_argument("--neg-risk", action="store_true", help="make every market neg-risk (neg-risk exchange domain)")
    sm.add_argument("--cash", default="10000", help="pUSD each trading account starts with (default 10000)")
    sm.add_argument("--allowance", help="pUSD approved to the exchanges (default unlimited)")
    sm.add_argument("--heartbeat-timeout", type=float, default=10.0,
                    help="seconds without a heartbeat before a key's orders are canceled (default 10)")
    sm.add_argument("--geoblocked", action="store_true", help="/api/geoblock answers blocked")
    sg = sm.add_argument_group("sports", "a live game: score feed /ws/sports, The Odds API /v4/sports/..., "
                                         "a moneyline market whose book lags the score")  # fmt: skip
    sg.add_argument("--sports", action="store_true", help="run a live basketball game")
    sg.add_argument("--league", default="nba", choices=["nba", "wnba", "ncaab"])
    sg.add_argument("--home", default="Boston Celtics", help="home team (outcome 0 of the market)")
    sg.add_argument("--away", default="Los Angeles Lakers", help="away team")
    sg.add_argument("--p0", type=float, default=0.60, help="pregame home win probability (default 0.60)")
    sg.add_argument("--game-seconds", type=float, default=240.0, help="wall seconds per regulation game (default 240)")
    sg.add_argument("--market-lag", type=float, default=3.0,
                    help="seconds the market's book lags the score and the bookmakers (default 3)")
    sg.add_argument("--seconds-delay", type=int, default=3,
                    help="matching delay of marketable orders while the game is live (Gamma secondsDelay, default 3)")
    sg.add_argument("--pregame", type=float, default=5.0, help="seconds from start to tip-off (default 5)")
    sg.add_argument("--sports-loop", action="store_true", help="start a new game when one ends")
    sg.add_argument("--odds-quota", type=int, default=500, help="The Odds API credits per apiKey (default 500)")
    sm.set_defaults(fn=cmd_sim)

    dr = sub.add_parser("doctor", help="preflight checks before live trading (keys, wallet, balance, clock, network)",
                        description="Check what the configured executor needs before a live session: params, private "
                                    "key and API credentials, wallet and signature type, balance and allowances, "
                                    "clock skew, reachability, geoblock, secrets-file permissions. Exit 0 when no "
                                    "check failed, 1 otherwise. Secrets are never printed.")  # fmt: skip
    dr.add_argument("--config", required=True, help="TOML config with the [executor] to check")
    dr.set_defaults(fn=cmd_doctor)

    wl = sub.add_parser("wallet", help="on-chain wallet: balances, approvals, wrapping USDC.e into pUSD",
                        description="The live wallet on chain ([wallet] and the executor's signature_type/funder; "
                                    "secrets private_key, rpc_url, relayer_api_key). approve and wrap print what they "
                                    "will send and ask first.")  # fmt: skip
    wsub = wl.add_subparsers(dest="wallet_cmd", metavar="WALLET_COMMAND", required=True)
    for name, helptext in (("status", "pUSD, USDC.e and POL balances, and every approval the exchanges need"),
                           ("approve", "send the missing approvals"), ("wrap", "wrap USDC.e into pUSD")):  # fmt: skip
        w = wsub.add_parser(name, help=helptext)
        w.add_argument("--config", required=True, help="TOML config with the live [executor] (and [wallet])")
        if name == "wrap":
            w.add_argument("amount", help="USDC.e to wrap, e.g. 25.5")
        w.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        w.add_argument("--dry-run", action="store_true", help="build and sign, print the hashes, send nothing")
        w.set_defaults(fn=cmd_wallet)

    v = sub.add_parser("version", help="print the version")
    v.set_defaults(fn=cmd_version)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "fn", None):
        parser.print_help()
        return 0
    from .config import ConfigError

    try:
        return int(a.fn(a) or 0)
    except ConfigError as exc:
        return _fail(str(exc))
    except FileNotFoundError as exc:
        return _fail(f"{exc.filename}: no such file")
    except KeyboardInterrupt:
        return 130
    except BaseExceptionGroup as eg:  # a task of the daemon refused to go on (e.g. unknown orders)
        cfg_errors = eg.subgroup(lambda e: isinstance(e, ConfigError))
        if cfg_errors is None:
            raise
        first = cfg_errors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        return _fail(str(first))


if __name__ == "__main__":
    raise SystemExit(main())
