"""Single-instance safety (polybot.instance): a second daemon on the same data dir, or on the same
account (key + funder) from another data dir, is refused before it touches anything, naming the
holder's pid and data dir; other accounts run side by side; a lock left by a killed process
does not block; the lock is released when a daemon ends or fails to start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from polybot.config import ConfigError, parse_config
from polybot.daemon import Daemon
from polybot.execution import NullExecutor
from polybot.instance import DATA_DIR_LOCK, AlreadyRunning, InstanceLock, account_lock_name, lock_dir

from proc_helpers import CLI, RECORDING, REPO, start_daemon, stop, wait_for

ACCOUNT = "0x1111111111111111111111111111111111111111:0x2222222222222222222222222222222222222222"
OTHER = "0x3333333333333333333333333333333333333333:0x2222222222222222222222222222222222222222"


class AccountExecutor(NullExecutor):
    """A null executor that names an account, as the live CLOB executor does."""

    def __init__(self, account_id: str = "") -> None:
        super().__init__()
        self.account_id = account_id


def config(data_dir: Path, account: str | None = None, extra: str = "") -> Any:
    executor = (f'kind = "{__name__}:AccountExecutor"\nparams = {{ account_id = "{account}" }}'
                if account is not None else 'kind = "null"')  # fmt: skip
    text = f"""
[engine]
data_dir = "{data_dir}"
recover = false
fsync = "never"

[logging]
status_interval_s = 0

[executor]
{executor}

[[feeds]]
kind = "player"
name = "demo"
params = {{ path = "{RECORDING}", speed = 1.0 }}
{extra}
"""
    return parse_config(msgspec.toml.decode(text.encode()), str(data_dir.parent / f"{data_dir.name}.toml"))


async def wait_locked(d: Daemon) -> None:
    with anyio.fail_after(10):
        while d.instance_lock is None or d.kernel.journal is None:
            await anyio.sleep(0.01)


def run_two(first: Any, second: Any) -> tuple[Exception | None, dict[str, Any]]:
    """Run ``first``; once it holds its locks, try ``second``. Returns what the second raised
    (None if it ran: it is then stopped at once) and the first's summary."""
    out: dict[str, Any] = {}

    async def main() -> None:
        d1 = Daemon(first)
        async with anyio.create_task_group() as tg:

            async def run1() -> None:
                out["first"] = await d1.run()

            tg.start_soon(run1)
            await wait_locked(d1)
            out["journal_before"] = d1.journal_path.stat().st_ino
            d2 = Daemon(second)
            try:
                async with anyio.create_task_group() as tg2:

                    async def run2() -> None:
                        out["second"] = await d2.run()

                    tg2.start_soon(run2)
                    await wait_locked(d2)
                    d2.request_stop()
                out["error"] = None
            except ConfigError as exc:
                out["error"] = exc
            except BaseExceptionGroup as eg:  # anyio wraps what a task raised
                out["error"] = eg.exceptions[0]
            # the refused daemon touched nothing: the first one's journal was not moved aside
            assert d1.journal_path.stat().st_ino == out["journal_before"]
            assert d1.instance_lock is not None
            d1.request_stop()

    anyio.run(main)
    return out["error"], out["first"]


def test_second_daemon_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    err, summary = run_two(config(data), config(data))
    assert isinstance(err, AlreadyRunning)
    msg = str(err)
    assert msg.startswith(f"{tmp_path / 'data.toml'}: engine.data_dir: ")
    assert f"pid {os.getpid()}" in msg and f"data_dir {data}" in msg
    assert summary["journal"] == str(data / "journal.jsonl")
    # released at the end: the file is emptied, the lock is free again
    assert (data / DATA_DIR_LOCK).read_text() == ""
    InstanceLock(data).acquire().release()


def test_same_account_from_another_data_dir_is_refused(tmp_path: Path) -> None:
    # the same account, its addresses in another case: still the same account
    err, _ = run_two(config(tmp_path / "a", ACCOUNT), config(tmp_path / "b", ACCOUNT.upper().replace("0X", "0x")))
    assert isinstance(err, AlreadyRunning)
    msg = str(err)
    assert ": executor: account " in msg
    assert f"pid {os.getpid()}" in msg and f"data_dir {tmp_path / 'a'}" in msg
    assert err.path == lock_dir() / account_lock_name(ACCOUNT)
    # the refused one released its own data dir's lock on the way out
    InstanceLock(tmp_path / "b").acquire().release()


def test_different_accounts_and_no_account_run_side_by_side(tmp_path: Path) -> None:
    err, _ = run_two(config(tmp_path / "a", ACCOUNT), config(tmp_path / "b", OTHER))
    assert err is None
    err, _ = run_two(config(tmp_path / "c"), config(tmp_path / "d"))  # paper/null: no account lock
    assert err is None


def test_record_only_takes_only_the_data_dir_lock(tmp_path: Path) -> None:
    holder = InstanceLock(tmp_path / "live", account_id=ACCOUNT).acquire()
    try:
        d = Daemon(config(tmp_path / "rec", ACCOUNT), record_only=True)
        d.lock_instance()
        assert d.instance_lock.account_lock is None and d.instance_lock.held
        d.unlock_instance()
        with pytest.raises(AlreadyRunning, match="executor: account"):
            Daemon(config(tmp_path / "other", ACCOUNT)).lock_instance()
    finally:
        holder.release()


def test_lock_is_released_when_the_start_fails(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = config(tmp_path / "data", ACCOUNT, extra=f"[api]\nenabled = true\nport = {port}\n")
        with pytest.raises(ConfigError, match="api.port: cannot listen"):
            anyio.run(Daemon(cfg).run)
    InstanceLock(tmp_path / "data", account_id=ACCOUNT).acquire().release()


def test_lock_of_a_killed_process_does_not_block(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code = textwrap.dedent(f"""
        import sys, time
        from polybot.instance import InstanceLock
        InstanceLock({str(data)!r}, account_id={ACCOUNT!r}, config_path="held.toml").acquire()
        print("locked", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
        with pytest.raises(AlreadyRunning) as e:
            InstanceLock(tmp_path / "elsewhere", account_id=ACCOUNT).acquire()
        assert f"pid {proc.pid}" in str(e.value) and f"data_dir {data}" in str(e.value) and "config held.toml" in str(e.value)
        assert json.loads((data / DATA_DIR_LOCK).read_text())["pid"] == proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the files are still there, with the dead holder's details, but the kernel dropped its locks
    assert json.loads((data / DATA_DIR_LOCK).read_text())["pid"] == proc.pid
    lock = InstanceLock(data, account_id=ACCOUNT).acquire()
    try:
        assert json.loads((data / DATA_DIR_LOCK).read_text())["pid"] == os.getpid()
        assert json.loads(lock.account_lock.path.read_text())["data_dir"] == str(data)
    finally:
        lock.release()


def test_cli_refuses_a_second_daemon(tmp_path: Path) -> None:
    from test_daemon import demo_config

    cfg = demo_config(tmp_path, speed=5)
    proc, err = start_daemon(cfg, tmp_path)
    try:
        lock = tmp_path / "data" / DATA_DIR_LOCK
        wait_for(lambda: lock.exists() and lock.read_text().strip() != "", 20, proc, err, "the lock")
        r = subprocess.run([str(CLI), "run", "--config", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert "engine.data_dir" in r.stderr and f"pid {proc.pid}" in r.stderr and str(tmp_path / "data") in r.stderr
        assert not (tmp_path / "data" / "journal.1.jsonl").exists()  # the running journal was left alone
    finally:
        summary = stop(proc, err)
    assert summary["inputs"] > 0
