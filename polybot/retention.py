"""Journal retention: compress and delete old journal parts (``[retention]`` in the config).

A fresh start (``engine.recover = false``) moves the previous session's journal aside as
``journal.<n>.jsonl`` and its snapshot as ``snapshot.<n>.json`` (``Daemon._rotate_previous``);
each such part is one whole session, which is what a faithful replay needs. This module decides,
from the files' ages (mtime: when the session last wrote) and a clock, what to do with them:

* ``compress_after_days``: gzip ``journal.<n>.jsonl`` to ``journal.<n>.jsonl.gz`` (replay,
  report and ``polybot replay --mode faithful`` read ``.gz`` transparently). Atomic: written to
  ``.gz.tmp``, fsynced, renamed, the directory fsynced, and only then the original deleted; the
  ``.gz`` keeps the original's mtime, so its age still counts from the end of its session.
* ``delete_after_days``: delete a part (and its ``snapshot.<n>.json``) this old, except the
  newest ``keep_parts`` parts, which are kept whatever their age.

The current journal and its snapshot are never touched. :func:`plan` is pure (a directory
listing and a clock in, actions out); :func:`apply` does the work under
``<dir>/polybot.retention.lock`` so that ``polybot prune`` and a running daemon never compress
the same part at once. The daemon applies the policy when it starts and then every hour
(:func:`retention_loop`, in a worker thread: compressing a large part must not stall the
event loop; it stops between chunks when the daemon shuts down).
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

import msgspec
from loguru import logger

RETENTION_LOCK = "polybot.retention.lock"
INTERVAL_S = 3600.0
DAY_S = 86_400.0
_CHUNK = 1 << 20


class Policy(Protocol):
    compress_after_days: float
    delete_after_days: float
    keep_parts: int


class RetentionBusy(RuntimeError):
    """Another process is applying the retention policy to this directory."""


class Stopped(RuntimeError):
    """The daemon is shutting down: the part being compressed was left as it was."""


class Part(msgspec.Struct, frozen=True):
    """One old session: its journal (plain and/or .gz) and its snapshot, by part number."""

    n: int
    plain: Path | None
    gz: Path | None
    snapshot: Path | None
    mtime: float  # of the journal: when the session last wrote
    size: int  # on disk, journal files only


class Action(msgspec.Struct):
    kind: Literal["compress", "delete", "cleanup"]
    path: Path
    part: int
    age_days: float
    reason: str
    target: Path | None = None  # compress: the .gz written
    size: int = 0  # bytes of ``path`` before
    size_after: int = 0  # compress: bytes of the .gz
    done: bool = False


def _split(journal_path: Path) -> tuple[str, str]:
    """``journal.jsonl`` -> (``journal``, ``.jsonl``), the names ``_rotate_previous`` uses."""
    return journal_path.stem, journal_path.suffix


def _part_re(journal_path: Path) -> re.Pattern[str]:
    stem, suffix = _split(journal_path)
    return re.compile(rf"{re.escape(stem)}\.(\d+){re.escape(suffix)}(\.gz)?(\.tmp)?")


def list_parts(journal_path: str | os.PathLike[str], snapshot_path: str | os.PathLike[str] | None = None,
               ) -> tuple[list[Part], list[Path]]:  # fmt: skip
    """The old parts next to ``journal_path`` (oldest first) and stale ``.gz.tmp`` files."""
    jp = Path(journal_path)
    pat = _part_re(jp)
    plain: dict[int, Path] = {}
    gz: dict[int, Path] = {}
    tmps: list[Path] = []
    try:
        entries = list(os.scandir(jp.parent))
    except FileNotFoundError:
        return [], []
    already_gz = jp.suffix == ".gz"  # a .gz journal_file: its parts are compressed already
    for e in entries:
        m = pat.fullmatch(e.name)
        if m is None or not e.is_file(follow_symlinks=False):
            continue
        n = int(m.group(1))
        if m.group(3):
            if m.group(2):
                tmps.append(Path(e.path))
            continue
        (gz if m.group(2) or already_gz else plain)[n] = Path(e.path)
    snaps: dict[int, Path] = {}
    if snapshot_path is not None:
        sp = Path(snapshot_path)
        spat = re.compile(rf"{re.escape(sp.stem)}\.(\d+){re.escape(sp.suffix)}")
        for e in entries:
            m = spat.fullmatch(e.name)
            if m is not None and e.is_file(follow_symlinks=False):
                snaps[int(m.group(1))] = Path(e.path)
    parts = []
    for n in sorted(set(plain) | set(gz)):
        files = [p for p in (plain.get(n), gz.get(n)) if p is not None]
        try:
            stats = [p.stat() for p in files]
        except FileNotFoundError:  # removed while we looked
            continue
        # the original's mtime when it is still there (a crash between the rename of the .gz
        # and the removal of the original leaves both)
        parts.append(Part(n, plain.get(n), gz.get(n), snaps.get(n), stats[0].st_mtime, sum(s.st_size for s in stats)))
    return parts, sorted(tmps)


def next_part_number(journal_path: str | os.PathLike[str], snapshot_path: str | os.PathLike[str] | None = None) -> int:
    """The number for the next part: one past every part there is or was compressed (never a
    gap's number, so part numbers stay in session order after compression or deletion)."""
    parts, tmps = list_parts(journal_path, snapshot_path)
    ns = [p.n for p in parts]
    if snapshot_path is not None:
        sp = Path(snapshot_path)
        spat = re.compile(rf"{re.escape(sp.stem)}\.(\d+){re.escape(sp.suffix)}")
        ns += [int(m.group(1)) for p in sp.parent.glob(f"{sp.stem}.*{sp.suffix}") if (m := spat.fullmatch(p.name))]
    pat = _part_re(Path(journal_path))
    ns += [int(m.group(1)) for t in tmps if (m := pat.fullmatch(t.name))]
    return max(ns, default=0) + 1


def check_policy(policy: Policy) -> None:
    """Raises ValueError naming the bad field (``compress_after_days: ...``)."""
    for key in ("compress_after_days", "delete_after_days"):
        v = getattr(policy, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{key}: must be a number of days >= 0 (0 = never), got {v!r}")
    k = policy.keep_parts
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"keep_parts: must be a whole number >= 0, got {k!r}")


def plan(journal_path: str | os.PathLike[str], policy: Policy, now: float,
         snapshot_path: str | os.PathLike[str] | None = None) -> list[Action]:  # fmt: skip
    """What the policy asks for, given the directory as it is and ``now`` (epoch seconds)."""
    check_policy(policy)
    jp = Path(journal_path)
    parts, tmps = list_parts(jp, snapshot_path)
    protected = {jp.resolve()}
    if snapshot_path is not None:
        protected.add(Path(snapshot_path).resolve())
    out: list[Action] = []
    for t in tmps:
        out.append(Action("cleanup", t, 0, 0.0, "left by an interrupted compression", size=_size(t)))
    keep = {p.n for p in sorted(parts, key=lambda p: p.n, reverse=True)[: policy.keep_parts]}
    for p in parts:
        age = max(0.0, (now - p.mtime) / DAY_S)
        files = [f for f in (p.plain, p.gz, p.snapshot) if f is not None and f.resolve() not in protected]
        if policy.delete_after_days > 0 and age > policy.delete_after_days and p.n not in keep:
            why = f"older than delete_after_days = {policy.delete_after_days:g}"
            out += [Action("delete", f, p.n, age, why, size=_size(f)) for f in files]
            continue
        if (policy.compress_after_days > 0 and age > policy.compress_after_days and p.plain is not None
                and p.plain in files):  # fmt: skip
            target = p.plain.with_name(p.plain.name + ".gz")
            out.append(Action("compress", p.plain, p.n, age, f"older than compress_after_days = "
                              f"{policy.compress_after_days:g}", target=target, size=_size(p.plain)))  # fmt: skip
    return out


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def compress(src: Path, dst: Path, should_stop: Callable[[], bool] | None = None) -> int:
    """gzip ``src`` into ``dst`` atomically, then delete ``src``; returns the size of ``dst``."""
    st = src.stat()
    tmp = dst.with_name(dst.name + ".tmp")
    n = 0
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as raw:
            with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
                while chunk := fin.read(_CHUNK):
                    if should_stop is not None and should_stop():
                        raise Stopped(f"stopped while compressing {src}; it is left as it was")
                    gz.write(chunk)
                    n += len(chunk)
            raw.flush()
            os.fsync(raw.fileno())
        if n != st.st_size or src.stat().st_mtime_ns != st.st_mtime_ns:
            raise OSError(errno.EBUSY, f"{src} changed while it was compressed; left as it was")
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # the age still counts from the session's end
        os.replace(tmp, dst)
        _fsync_dir(dst.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    src.unlink()
    _fsync_dir(src.parent)
    return dst.stat().st_size


class _DirLock:
    """The directory's retention lock (non-blocking flock); RetentionBusy when held elsewhere."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd = -1

    def __enter__(self) -> _DirLock:
        self.fd = os.open(self.directory / RETENTION_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RetentionBusy(f"{self.directory}: another process is applying the retention policy here") from None
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # drops the lock


def apply(actions: list[Action], should_stop: Callable[[], bool] | None = None) -> list[Action]:
    """Carry out ``actions`` (the caller holds the directory's retention lock); returns those
    done (a failure is logged and the rest go on). Raises Stopped when ``should_stop`` turns true."""
    done: list[Action] = []
    for a in actions:
        if should_stop is not None and should_stop():
            raise Stopped("shutting down")
        try:
            if a.kind == "compress":
                assert a.target is not None
                a.size_after = compress(a.path, a.target, should_stop)
            else:
                a.path.unlink(missing_ok=True)
        except OSError as exc:
            logger.error("retention: could not {} {}: {}", a.kind, a.path, exc.strerror or exc)
            continue
        a.done = True
        done.append(a)
    dirs = {a.path.parent for a in done if a.kind != "compress"}  # compress fsyncs its own
    for d in dirs:
        _fsync_dir(d)
    return done


def prune(journal_path: str | os.PathLike[str], snapshot_path: str | os.PathLike[str] | None, policy: Policy,
          now: float, *, dry_run: bool = False, should_stop: Callable[[], bool] | None = None) -> list[Action]:  # fmt: skip
    """Plan and (unless ``dry_run``) apply, under the directory's retention lock (planned there
    too, so the plan is never stale): the actions planned, ``done`` set on those done. Raises
    RetentionBusy when another process holds the lock."""
    jp = Path(journal_path)
    if dry_run or not jp.parent.is_dir():
        return plan(jp, policy, now, snapshot_path)
    with _DirLock(jp.parent):
        actions = plan(jp, policy, now, snapshot_path)
        apply(actions, should_stop)
    return actions


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def describe(a: Action, dry_run: bool = False) -> str:
    """One line for the operator: ``compressed var/journal.1.jsonl -> ... (12.0 MB -> 1.1 MB; ...)``."""
    if a.kind == "compress":
        if dry_run or not a.done:
            verb = "would compress" if dry_run else "did not compress"
            return f"{verb} {a.path} -> {a.target} ({_mb(a.size)}; {a.age_days:.1f} days old, {a.reason})"
        return f"compressed {a.path} -> {a.target} ({_mb(a.size)} -> {_mb(a.size_after)}; {a.age_days:.1f} days old)"
    verb = {"delete": ("would delete", "deleted", "did not delete"),
            "cleanup": ("would remove", "removed", "did not remove")}[a.kind]  # fmt: skip
    word = verb[0] if dry_run else (verb[1] if a.done else verb[2])
    age = f"; {a.age_days:.1f} days old" if a.kind == "delete" else ""
    return f"{word} {a.path} ({_mb(a.size)}{age}, {a.reason})"


async def retention_loop(journal_path: Path, snapshot_path: Path, policy: Policy, stopping: Callable[[], bool],
                         interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
    """The daemon's task: apply the policy now and then every ``interval_s``, in a worker thread."""
    import anyio

    if policy.compress_after_days <= 0 and policy.delete_after_days <= 0:
        return
    while True:
        try:
            actions = await anyio.to_thread.run_sync(
                lambda: prune(journal_path, snapshot_path, policy, clock(), should_stop=stopping))
        except RetentionBusy as exc:
            logger.info("retention: {}; next try in {:.0f} s", exc, interval_s)
        except Stopped:
            return
        except Exception:  # noqa: BLE001 - housekeeping must never take the daemon down
            logger.exception("retention: applying the policy failed; next try in {:.0f} s", interval_s)
        else:
            for a in actions:
                if a.done:
                    logger.info("retention: {}", describe(a))
        await anyio.sleep(interval_s)

