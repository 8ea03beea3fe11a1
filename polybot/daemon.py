"""The daemon: wires feeds, strategies, the risk chain and the executor from config and runs them
under one anyio task group.

Tasks: one per feed (I/O), the executor's own task (asynchronous executors), the timer task
(sends a ``clock`` tick when the earliest timer is due), the control-inbox watcher (``polybot
halt`` etc. append to ``<data_dir>/control.jsonl``), a periodic journal flusher, a status logger,
the journal retention task (``[retention]`` on old journal parts, at start and hourly), and the consumer, which takes inbound records one at a time from the bounded stream and hands them
to the kernel (the one door). SIGINT/SIGTERM (or every feed finishing) starts a clean shutdown:
feeds stop, open orders are cancelled or left per ``engine.on_shutdown``, in-flight executor
requests drain, a final snapshot is written and the journal is flushed and fsynced.
Before any of it, :meth:`Daemon.run` takes the single-instance lock (polybot.instance): one
daemon per data dir and per account.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from loguru import logger

from .clock import LiveClock
from .config import Config, ConfigError, describe_validation_error
from .feeds import Feed
from .journal import JournalWriter, RotatingJournalWriter
from .kernel import InboundRecord, Kernel
from .logs import OrderLog
from .recovery import SNAPSHOT_FILE, recover, write_snapshot
from .report import SessionReport
from .retention import next_part_number, retention_loop
from .strategy import convert_params
from .units import from_units
from .wiring import _by_name, build_executor, build_kernel

CONTROL_INBOX = "control.jsonl"
API_FILE = "api.json"  # {"url", "pid"} of the running daemon's API
_SHUTDOWN = "__shutdown__"
_BARRIER = "__barrier__"  # not an input: tells the shutdown when the consumer has caught up


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def build_feeds(cfg: Config) -> list[Feed]:
    feeds: list[Feed] = []
    file = cfg.source_path or "<config>"
    for i, fc in enumerate(cfg.feeds):
        where = f"feeds[{i}]"
        try:
            cls = _by_name("polybot.adapters", fc.kind)
        except (LookupError, ImportError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{file}: {where}.kind: {exc}") from None
        try:
            params = convert_params(cls.Params, fc.params)
        except msgspec.ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, file, f"{where}.params")) from None
        feed = cls(fc.name or f"{fc.kind}-{i}", params)
        hook = getattr(feed, "configure", None)
        if hook is not None:  # a feed that needs credentials (an odds API key) reads them here
            try:
                hook(cfg)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{file}: {where}: {exc}") from None
        feeds.append(feed)
    return feeds


class Daemon:
    def __init__(self, cfg: Config, *, record_only: bool = False, journal_path: str | None = None,
                 rotate_bytes: int = 0, rotate_seconds: float = 0) -> None:  # fmt: skip
        self.cfg = cfg
        self.clock = LiveClock()
        self.data_dir = Path(cfg.engine.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = Path(journal_path) if journal_path else self.data_dir / cfg.engine.journal_file
        self.snapshot_path = self.data_dir / SNAPSHOT_FILE
        self.feeds = build_feeds(cfg)
        self.executor = build_executor(cfg)
        self.record_only = record_only
        self.rotate = (rotate_bytes, rotate_seconds)
        self.kernel: Kernel = build_kernel(cfg, executor=self.executor, only_strategies=[] if record_only else None)
        self.inputs_since_snapshot = 0
        self._timers_changed = anyio.Event()
        self._consumer_done = anyio.Event()
        self.recovered: dict[str, Any] = {}
        self.report: SessionReport | None = None  # this session's orders, fills and PnL
        self.monitor: Any = None  # polybot.monitor.Monitor when the API is on
        self.api: Any = None  # polybot.api.ApiServer
        self._api_token = ""
        if cfg.api.enabled and not record_only:
            from .api import resolve_token
            from .config import load_secrets

            # refuse to start (naming api.host) before anything runs: a non-loopback API needs a token
            self._api_token, self._api_token_from = resolve_token(
                cfg.api, load_secrets(cfg).get("api_token"), self.data_dir, cfg.source_path or "<config>")
        self.alerts: Any = None  # polybot.alerts.AlertService ([alerts]); silent until its task runs
        if cfg.alerts.enabled and not record_only:
            from .alerts import build_alert_service

            # refuses (naming the key) a sink without its secret before anything runs
            self.alerts = build_alert_service(cfg, self.kernel, feeds=[f.name for f in self.feeds])

    # ------------------------------------------------------------------------------ setup

    def prepare(self) -> None:
        """Start strategies, rebuild state from snapshot + journal, attach the journal."""
        k = self.kernel
        k.start()
        if self.cfg.engine.recover and not self.record_only:
            self.recovered = recover(k, self.journal_path, self.snapshot_path, self.cfg.replay.bare_source)
        else:
            self._rotate_previous()
        if self.record_only and any(self.rotate):
            w = RotatingJournalWriter(self.journal_path, self.rotate[0], self.rotate[1], fsync=self.cfg.engine.fsync)
            # each part starts from fresh book snapshots, so it replays on its own
            w.on_rotate.append(lambda _p: [getattr(f, "request_snapshots", lambda: 0)() for f in self.feeds])
            k.journal = w
        elif self.cfg.engine.journal:
            k.journal = JournalWriter(self.journal_path, fsync=self.cfg.engine.fsync)
            if self.recovered:
                # the recovered state, pointing at the journal it continues (after a rotation
                # cut short, a new one), before anything else happens
                self.snapshot()
        k.timers.on_change.append(lambda _d: self._timers_changed.set())
        if not self.record_only:
            pc = self.cfg.portfolio
            self.report = SessionReport(k, mark=pc.mark, sample_ns=int(pc.drawdown_sample_s * 1e9))
            # one log line per order lifecycle step (after recovery: recovered orders are not news)
            self.order_log = OrderLog().attach(k)

    def _build_api(self, send: ObjectSendStream[InboundRecord]) -> Any:
        from .api import ApiServer

        k = self.kernel
        control = self._door_control(send)

        def metrics() -> str:
            from .metrics import render_metrics

            return render_metrics(k, self.monitor, {"queue_size": self.cfg.engine.queue_size,
                                                    "queued": send.statistics().current_buffer_used})  # fmt: skip

        return ApiServer(self.cfg.api, self.monitor, token=self._api_token, control=control, executor=self.executor,
                         metrics=metrics, token_from=self._api_token_from)  # fmt: skip

    def _door_control(self, send: ObjectSendStream[InboundRecord]) -> Any:
        """``control(ev)`` for the API's and the alerts' commands: one control input through the
        door, returning once the kernel has processed it."""
        from .events import ENCODER

        async def control(ev: Any) -> None:
            await send.send(InboundRecord(self.clock.now(), "control", ENCODER.encode(ev)))
            done = anyio.Event()
            await send.send(InboundRecord(self.clock.now(), _BARRIER, done))
            await done.wait()

        return control

    def _rotate_previous(self) -> None:
        """A fresh start must not append to an old session's journal (the file would no longer
        replay faithfully): move it, and its snapshot, aside as ``<name>.<n><suffix>``."""
        jp = self.journal_path
        if not jp.exists() or jp.stat().st_size == 0:
            return
        # one past every part there is, compressed (.gz) or not: numbers stay in session order
        n = next_part_number(jp, None if self.record_only else self.snapshot_path)
        jp.rename(jp.parent / f"{jp.stem}.{n}{jp.suffix}")
        if self.snapshot_path.exists() and not self.record_only:
            self.snapshot_path.rename(self.snapshot_path.parent / f"{self.snapshot_path.stem}.{n}{self.snapshot_path.suffix}")
        logger.info("fresh start: previous journal kept as {}.{}{}", jp.stem, n, jp.suffix)

    def snapshot(self) -> None:
        k = self.kernel
        if k.journal is None or self.record_only:
            return
        self.inputs_since_snapshot = 0
        try:
            offset = k.journal.offset()
            write_snapshot(self.snapshot_path, k, self.journal_path.name, offset)
        except Exception:  # noqa: BLE001 - the journal still has everything; recovery is slower
            logger.exception("state snapshot failed; recovery will replay more of the journal")
            return
        limit = self.cfg.engine.rotate_mb
        if limit > 0 and offset >= limit * 1e6 and not isinstance(k.journal, RotatingJournalWriter):
            try:
                self._rotate_live()
            except Exception:  # noqa: BLE001 - keep journaling into whatever file is open
                logger.exception("journal rotation failed; the journal keeps growing")

    def _rotate_live(self) -> None:
        """Start a new journal part at a snapshot boundary. The snapshot just written holds the
        whole state, so the full journal becomes ``journal.<n>.jsonl`` (a copy of that snapshot
        as ``snapshot.<n>.json``: the state the next part starts from) and a fresh journal
        starts at offset 0 with a snapshot pointing at it. A crash between the steps loses
        nothing: with the journal renamed away, recovery restores the snapshot alone, and the
        daemon's first snapshot after recovery points at the new journal. The new journal is
        only created once its snapshot is written (an empty journal next to a snapshot that
        points past its end would make recovery ignore the snapshot); a step that fails puts
        the old journal back and journaling goes on in it."""
        import shutil

        from .recovery import read_snapshot

        k = self.kernel
        jp, sp = self.journal_path, self.snapshot_path
        fsync = self.cfg.engine.fsync
        n = next_part_number(jp, sp)
        old = k.journal
        assert old is not None
        part = jp.parent / f"{jp.stem}.{n}{jp.suffix}"
        # the snapshot kept with the part first: when this fails nothing has changed yet
        tmp = sp.parent / f"{sp.stem}.{n}{sp.suffix}.tmp"
        shutil.copyfile(sp, tmp)
        tmp.rename(sp.parent / f"{sp.stem}.{n}{sp.suffix}")
        old.close()  # flushed and fsynced
        try:
            jp.rename(part)
        except Exception:
            k.journal = JournalWriter(jp, fsync=fsync)  # the same journal, appended to
            raise
        try:
            write_snapshot(sp, k, jp.name, 0)
        except Exception:
            try:
                snap = read_snapshot(sp)
            except RuntimeError:
                snap = None
            if snap is None or snap.journal_offset > 0:  # the snapshot still points into the old journal
                part.rename(jp)
            k.journal = JournalWriter(jp, fsync=fsync)
            raise
        k.journal = JournalWriter(jp, fsync=fsync)
        logger.info("journal: part {} closed at {:.1f} MB ({}); a new part starts", n, part.stat().st_size / 1e6, part.name)

    # ------------------------------------------------------------------------------ tasks

    async def _consume(self, recv: ObjectReceiveStream[InboundRecord]) -> None:
        k = self.kernel
        every = self.cfg.engine.snapshot_every
        async with recv:
            async for rec in recv:
                if rec.source == _SHUTDOWN:
                    self._consumer_done.set()
                    return
                if rec.source == _BARRIER:
                    rec.msg.set()  # everything sent before it has been processed
                    continue
                try:
                    k.process(rec.ts, rec.source, rec.msg)
                except Exception:  # noqa: BLE001 - a kernel bug must not lose the journal
                    logger.exception("kernel failed on an input from {}; continuing", rec.source)
                if rec.source == "clock":
                    self._timers_changed.set()
                self.inputs_since_snapshot += 1
                if self.inputs_since_snapshot >= every:
                    self.snapshot()

    async def _timer_task(self, send: ObjectSendStream[InboundRecord]) -> None:
        k = self.kernel
        async with send:
            sent_for: int | None = None
            while True:
                d = k.next_deadline()
                now = self.clock.now()
                if d is not None and d <= now and d != sent_for:
                    sent_for = d
                    await send.send(InboundRecord(now, "clock", b"{}"))
                    continue
                wait = 0.25 if d is None or d == sent_for else min(0.25, max(0.0, (d - now) / 1e9))
                self._timers_changed = anyio.Event()
                with anyio.move_on_after(wait):
                    await self._timers_changed.wait()
                if k.next_deadline() != sent_for:
                    sent_for = None

    async def _control_inbox(self, send: ObjectSendStream[InboundRecord]) -> None:
        """Tail ``<data_dir>/control.jsonl``: each new line is a control command."""
        path = self.data_dir / CONTROL_INBOX
        pos = path.stat().st_size if path.exists() else 0
        async with send:
            while True:
                await anyio.sleep(0.2)
                if not path.exists():
                    pos = 0
                    continue
                size = path.stat().st_size
                if size < pos:
                    pos = 0
                if size == pos:
                    continue
                with open(path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
                end = data.rfind(b"\n") + 1
                pos += end
                for line in data[:end].splitlines():
                    if line.strip():
                        await send.send(InboundRecord(self.clock.now(), "control", line.strip()))

    async def _flusher(self) -> None:
        interval = self.cfg.engine.flush_interval_ms / 1000
        while True:
            await anyio.sleep(interval)
            if self.kernel.journal is not None:
                self.kernel.journal.flush()

    async def _status(self) -> None:
        interval = self.cfg.logging.status_interval_s
        if interval <= 0:
            return
        last = 0
        while True:
            await anyio.sleep(interval)
            last = self.log_status(last, interval)

    def log_status(self, last_inputs: int = 0, interval: float = 0.0) -> int:
        k = self.kernel
        st = k.stats
        rate = f" {(st.inputs - last_inputs) / interval:,.0f} inputs/s" if interval else ""
        tops = []
        books = list(k.books.items())
        unhealthy = [(aid, b) for aid, b in books if not b.healthy]
        for aid, b in (unhealthy + [x for x in books if x[1].healthy])[:4]:  # the unhealthy ones first
            tops.append(f"{aid[:10]}… {from_units(b.best_bid) if b.best_bid else '-'}/{from_units(b.best_ask) if b.best_ask else '-'}"
                        f"{'' if b.healthy else f' UNHEALTHY ({b.unhealthy_reason})'}")  # fmt: skip
        if len(books) > 4:
            tops.append(f"+{len(books) - 4} more")
        hc = k.integrity.summary()["total"] if k.integrity.verify else {}
        checks = f" | hash checks {hc.get('passed', 0)} ok, {hc.get('failed', 0)} failed" if k.integrity.verify else ""
        pf = k.portfolio
        pnl = pf.pnl("", pf.marks(k.books))
        logger.info(
            "status: {} inputs{} | {} | books {}/{} healthy: {}{} | orders {} open, {} fills | "
            "pnl {} (realized {}, unrealized {}, fees {}, rebates {}) cash {} | drops {}",
            st.inputs, rate, k.trading_state, len(books) - len(unhealthy), len(books), "; ".join(tops) or "none", checks,
            len(k.orders.open_orders()), st.fills, from_units(pnl.net), from_units(pnl.realized),
            from_units(pnl.unrealized), from_units(pnl.fees), from_units(pnl.rebates), from_units(pnl.cash), st.dropped,
        )  # fmt: skip
        return st.inputs

    async def _run_feed(self, feed: Feed, send: ObjectSendStream[InboundRecord]) -> None:
        m = self.monitor
        if m is not None:
            m.feed_task(feed.name, True)
        detail = "ended"
        try:
            await feed.run(send, self.clock)
        except Exception as exc:  # noqa: BLE001 - one broken feed must not take the daemon down
            logger.exception("feed {} failed; it is stopped, the others keep running", feed.name)
            detail = f"failed: {type(exc).__name__}: {exc}"
        finally:
            if m is not None:
                m.feed_task(feed.name, False, detail)

    async def _run_for(self, seconds: float, scope: anyio.CancelScope) -> None:
        await anyio.sleep(seconds)
        logger.info("ran for {:.0f} s (engine.run_for_s): shutting down", seconds)
        scope.cancel()

    async def _signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
            async for sig in sigs:
                logger.warning("received {}, shutting down", signal.Signals(sig).name)
                scope.cancel()
                return

    # ------------------------------------------------------------------------------ main

    instance_lock: Any = None  # polybot.instance.InstanceLock while running

    async def run(self) -> dict[str, Any]:
        """Take the single-instance lock (refused with a ConfigError naming the other daemon),
        run, and release it when done, failed or cancelled."""
        self.lock_instance()
        try:
            return await self._run()
        finally:
            self.unlock_instance()

    def lock_instance(self) -> None:
        """The data dir's lock and, unless recording, the executor's account lock (polybot.instance)."""
        from .instance import InstanceLock

        members = list(getattr(self.executor, "members", {}).values()) or [self.executor]
        accounts = [] if self.record_only else [str(getattr(ex, "account_id", "") or "") for ex in members]
        self.instance_lock = InstanceLock(self.data_dir, account_ids=accounts,
                                          config_path=self.cfg.source_path).acquire()  # fmt: skip

    def unlock_instance(self) -> None:
        if self.instance_lock is not None:
            self.instance_lock.release()
            self.instance_lock = None

    def _stopping(self) -> bool:
        """True once the clean shutdown has started (read from a worker thread too)."""
        scope = getattr(self, "_feeds_scope", None)
        return bool(scope is not None and scope.cancel_called)

    async def _run(self) -> dict[str, Any]:
        k = self.kernel
        send, recv = anyio.create_memory_object_stream[InboundRecord](self.cfg.engine.queue_size)
        if self._api_token:  # listen first: a taken port refuses to start before anything is touched
            from .monitor import Monitor

            from .metrics import StageTiming

            k.timing = StageTiming()  # per-stage latency histograms for /metrics (~1 us per input)
            # subscribed before recovery, so the recovered session's fills and orders show too
            self.monitor = Monitor(k, feeds=[(f.name, type(f).__name__) for f in self.feeds],
                                   history=self.cfg.api.history, clock=self.clock)  # fmt: skip
            self.api = self._build_api(send.clone())
            try:
                await self.api.start()
            except OSError as exc:
                raise ConfigError(f"{self.cfg.source_path or '<config>'}: api.port: cannot listen on "
                                  f"{self.cfg.api.host}:{self.cfg.api.port}: {exc.strerror or exc}") from None
            logger.info("api: control token from {}", self._api_token_from)
            # where a client finds it (the port may have been 0 = any); never the token
            (self.data_dir / API_FILE).write_bytes(msgspec.json.encode(
                {"url": f"http://{_url_host(self.cfg.api.host)}:{self.api.port}/", "pid": os.getpid()}))  # fmt: skip
        self.prepare()
        logger.info("polybot daemon: {} feed(s), {} strateg(ies), executor {}, journal {}",
                    len(self.feeds), len(k.strategies),
                    self.executor.describe() if hasattr(self.executor, "describe") else self.executor.name,
                    self.journal_path)  # fmt: skip
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._consume, recv)
            if self.executor.asynchronous:
                tg.start_soon(self.executor.run, send.clone(), self.clock)
            tg.start_soon(self._timer_task, send.clone())
            tg.start_soon(self._control_inbox, send.clone())
            tg.start_soon(self._flusher)
            tg.start_soon(self._status)
            if not self.record_only:  # [retention] on old journal parts: now, then hourly
                tg.start_soon(retention_loop, self.journal_path, self.snapshot_path, self.cfg.retention, self._stopping)
            if self.api is not None:
                tg.start_soon(self.api.run)
            if self.alerts is not None:
                tg.start_soon(self.alerts.run, self._door_control(send.clone()))
            async with anyio.create_task_group() as feeds_tg:
                self._feeds_scope = feeds_tg.cancel_scope
                feeds_tg.start_soon(self._signals, feeds_tg.cancel_scope)
                if self.cfg.engine.run_for_s > 0:
                    feeds_tg.start_soon(self._run_for, self.cfg.engine.run_for_s, feeds_tg.cancel_scope)
                async with anyio.create_task_group() as inner:
                    for f in self.feeds:
                        f.attach(k)
                        inner.start_soon(self._run_feed, f, send.clone())
                feeds_tg.cancel_scope.cancel()  # every feed is done: stop the signal watcher
            with anyio.CancelScope(shield=True):
                await self._shutdown(send)
            send.close()
            tg.cancel_scope.cancel()
        return self.finish()

    def request_stop(self) -> None:
        """Start the clean shutdown (as SIGTERM does), from inside the event loop."""
        scope = getattr(self, "_feeds_scope", None)
        if scope is not None:
            scope.cancel()

    async def _shutdown(self, send: ObjectSendStream[InboundRecord]) -> None:
        """Cancel (per ``on_shutdown``) and drain. An order can become open after the first
        cancel-all (an acceptance that was still on its way): the kernel is asked again, once
        the consumer has caught up, until nothing is open or 10 s have passed."""
        k = self.kernel
        with anyio.move_on_after(10.0):
            for _round in range(5):
                if self.cfg.engine.on_shutdown == "cancel" and k.orders.open_orders():
                    await send.send(InboundRecord(self.clock.now(), "control",
                                                  b'{"type":"cancel_all","origin":"shutdown","reason":"shutdown"}'))  # fmt: skip
                while not self.executor.idle():
                    await anyio.sleep(0.01)
                await anyio.sleep(0.05)  # let the last answers reach the stream
                caught_up = anyio.Event()
                await send.send(InboundRecord(self.clock.now(), _BARRIER, caught_up))
                await caught_up.wait()
                if self.cfg.engine.on_shutdown != "cancel" or not k.orders.open_orders():
                    break
        # the sentinel queues behind every record already sent: when the consumer reaches it,
        # everything before it has been journaled and processed
        await send.send(InboundRecord(self.clock.now(), _SHUTDOWN, b""))
        await self._consumer_done.wait()

    def finish(self) -> dict[str, Any]:
        k = self.kernel
        if self.api is not None:
            (self.data_dir / API_FILE).unlink(missing_ok=True)
        k.stop()
        self.snapshot()
        if k.journal is not None:
            k.journal.close()
        self.executor.close()
        self.log_status()
        st = k.stats
        out = {"inputs": st.inputs, "intents": st.intents, "orders": st.orders, "fills": st.fills,
               "open_orders": len(k.orders.open_orders()), "dropped": st.dropped,
               "journal": str(k.journal.path) if k.journal is not None else None}  # fmt: skip
        if isinstance(k.journal, RotatingJournalWriter):
            out["parts"] = [str(p) for p in k.journal.parts]
        if self.report is not None:
            t = self.report.summary()["totals"]
            out["pnl"] = {x: t[x + "_str"] for x in ("net_pnl", "realized_pnl", "unrealized_pnl", "fees", "rebates",
                                                     "max_drawdown", "cash")}  # fmt: skip
            out["risk_rejections"] = t["rejected_by_validator"]
        healthy = sum(1 for _, b in k.books.items() if b.healthy)
        out["books"] = {"total": len(k.books), "healthy": healthy,
                        "hash_checks": k.integrity.summary()["total"]}  # fmt: skip
        return out


def run_daemon(cfg: Config, **kw: Any) -> dict[str, Any]:
    d = Daemon(cfg, **kw)
    return anyio.run(d.run)


def send_control(cfg: Config, command: dict[str, Any]) -> Path:
    """Append a control command for a running daemon (``polybot halt`` and friends)."""
    from .events import DECODER, ControlEvent, ENCODER

    line = ENCODER.encode(command)
    ev = DECODER.decode(line)
    if not isinstance(ev, ControlEvent):
        raise ValueError(f"not a control command: {command!r}")
    path = Path(cfg.engine.data_dir) / CONTROL_INBOX
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(line + b"\n")
    return path

