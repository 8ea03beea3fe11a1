"""Single-instance safety: one daemon per data dir, and one per trading account on this machine.

Two daemons on the same key and funder would each take the other's orders for unknown ones
(cancelling or adopting them), double the exposure the risk chain thinks it has, and write two
journals that both claim the account. :class:`InstanceLock` refuses the second one before it
listens, recovers or sends anything:

* ``<data_dir>/polybot.lock``: two daemons must never append to one journal;
* ``<lock dir>/account-<hash>.lock`` when the executor names an account (``account_id``, e.g.
  ``"<signer>:<funder>"`` for the live CLOB executor; paper and null executors have none): two
  daemons with different data dirs but the same account collide too. The lock dir is
  ``POLYBOT_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/polybot``, else ``~/.local/state/polybot/locks``;
  every daemon that may trade the account must see the same one (systemd and Docker set it).

Both are exclusive, non-blocking ``flock`` locks: the kernel drops them when the holder exits,
however it dies (SIGKILL, OOM, power loss), so a stale lock file never blocks a restart. The file
holds the holder's pid, start time, host, data dir and config path (JSON), which the refusal
names. The files are emptied on release but never deleted (deleting a flock file races with a
process that has just opened it).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import ConfigError

DATA_DIR_LOCK = "polybot.lock"
LOCK_DIR_ENV = "POLYBOT_LOCK_DIR"


class AlreadyRunning(ConfigError):
    """Another daemon holds the lock; the message names its pid and data dir."""

    def __init__(self, message: str, path: Path, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder


def lock_dir(env: Mapping[str, str] | None = None) -> Path:
    """The machine-wide directory of account locks."""
    env = os.environ if env is None else env
    if env.get(LOCK_DIR_ENV):
        return Path(env[LOCK_DIR_ENV]).expanduser()
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "polybot"
    return Path.home() / ".local" / "state" / "polybot" / "locks"


def account_lock_name(account_id: str) -> str:
    """``account-<hash>.lock``: the same account whatever the case of its addresses."""
    digest = hashlib.sha256(account_id.strip().lower().encode()).hexdigest()[:32]
    return f"account-{digest}.lock"


class FileLock:
    """An exclusive, non-blocking ``flock`` on one file, which records who holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self, holder: dict[str, Any]) -> dict[str, Any] | None:
        """Take the lock and write ``holder`` into the file; when another process holds it,
        return what that one wrote (``{}`` if unreadable) and hold nothing."""
        if self.fd is not None:
            return None
        # O_CLOEXEC: a program the daemon executes must not inherit (and keep) the lock
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            other = _read_holder(fd)
            os.close(fd)
            return other
        try:
            data = json.dumps(holder, sort_keys=True).encode() + b"\n"
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            os.close(fd)  # closing the descriptor drops the lock
            raise
        self.fd = fd
        return None

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale holder for the next reader
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    """What the holder wrote; it writes right after locking, so an empty file is retried briefly."""
    for attempt in range(5):
        try:
            raw = os.pread(fd, 64 * 1024, 0)
        except OSError:
            return {}
        if raw.strip():
            try:
                out = json.loads(raw)
            except ValueError:
                return {}
            return out if isinstance(out, dict) else {}
        if attempt < 4:
            time.sleep(0.01)
    return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "pid unknown"
    parts = [f"pid {holder.get('pid', '?')}"]
    host = holder.get("host")
    if host and host != socket.gethostname():
        parts[0] += f" on {host}"
    parts.append(f"data_dir {holder.get('data_dir') or '?'}")
    if holder.get("config"):
        parts.append(f"config {holder['config']}")
    if holder.get("started"):
        parts.append(f"started {holder['started']}")
    return ", ".join(parts)


class InstanceLock:
    """The data-dir lock, plus the account lock when ``account_id`` is given.

    ``acquire()`` raises :class:`AlreadyRunning` (a :class:`ConfigError`, which the CLI prints
    before exiting non-zero) when another process holds either; ``release()`` drops both and
    may be called any number of times.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, account_id: str = "", config_path: str = "",
                 directory: str | os.PathLike[str] | None = None, account_ids: Sequence[str] = ()) -> None:  # fmt: skip
        self.data_dir = Path(data_dir).absolute()
        # one lock per account traded (a router of venues trades one account on each)
        ids = [a.strip() for a in (account_id, *account_ids) if a and a.strip()]
        self.account_ids = list(dict.fromkeys(ids))
        self.account_id = self.account_ids[0] if self.account_ids else ""
        self.config_path = config_path
        self.directory = Path(directory) if directory is not None else lock_dir()
        self.data_lock = FileLock(self.data_dir / DATA_DIR_LOCK)
        self.account_locks = [FileLock(self.directory / account_lock_name(a)) for a in self.account_ids]
        self.account_lock = self.account_locks[0] if self.account_locks else None

    @property
    def held(self) -> bool:
        return self.data_lock.held and all(lk.held for lk in self.account_locks)

    def holder(self, kind: str) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "data_dir": str(self.data_dir), "config": self.config_path, "lock": kind}  # fmt: skip

    def acquire(self) -> InstanceLock:
        file = self.config_path or "<config>"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            other = self.data_lock.acquire(self.holder("data_dir"))
        except OSError as exc:
            raise ConfigError(f"{file}: engine.data_dir: cannot lock {self.data_lock.path}: {exc.strerror or exc}") from None
        if other is not None:
            raise AlreadyRunning(
                f"{file}: engine.data_dir: {self.data_dir} is in use by another polybot ({_describe(other)}); "
                f"stop that one first, or give this one its own data_dir (lock {self.data_lock.path})",
                self.data_lock.path, other)  # fmt: skip
        for i, (account, lk) in enumerate(zip(self.account_ids, self.account_locks)):
            try:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                other = lk.acquire(self.holder("account"))
            except OSError as exc:
                self._release_upto(i)
                raise ConfigError(f"{file}: executor: cannot lock the account in {self.directory} "
                                  f"({LOCK_DIR_ENV}): {exc.strerror or exc}") from None  # fmt: skip
            if other is not None:
                self._release_upto(i)
                raise AlreadyRunning(
                    f"{file}: executor: account {account} is already traded by another polybot "
                    f"({_describe(other)}); two daemons on one key and funder would cancel each other's "
                    f"orders: stop that one first (lock {lk.path})",
                    lk.path, other)  # fmt: skip
        return self

    def _release_upto(self, n: int) -> None:
        for lk in self.account_locks[:n]:
            lk.release()
        self.data_lock.release()

    def release(self) -> None:
        for lk in self.account_locks:
            lk.release()
        self.data_lock.release()

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
