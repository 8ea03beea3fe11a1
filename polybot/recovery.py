"""Durability: state snapshots and rebuilding the kernel after a crash.

The daemon writes a snapshot every ``engine.snapshot_every`` inputs and at shutdown: the kernel's
state (positions, open orders, PnL, exposure, trading state, timers, books, catalog, strategy
state) plus the journal's byte offset at that moment, written atomically (temp file, fsync,
rename). On start, :func:`recover` loads the last snapshot and feeds the journal's tail (every
input after the offset, in order) through the kernel again, with journaling off. An asynchronous
executor (live) is replaced by one that sends nothing, because those orders were already sent and
their answers are in the tail; a simulated one (null, paper) answers again, identically, from its
snapshotted state.
The result is the state the process had at its last journaled input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
from loguru import logger

from .events import enc_hook
from .execution.router import recorded_twin
from .journal import ENGINE_EVENT, JournalReader, repair_tail
from .kernel import Kernel

SNAPSHOT_FILE = "snapshot.json"


class Snapshot(msgspec.Struct):
    journal_file: str
    journal_offset: int
    inputs: int
    state: dict[str, Any]


def write_snapshot(path: str | os.PathLike[str], kernel: Kernel, journal_file: str, journal_offset: int) -> None:
    p = Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    data = msgspec.json.encode(Snapshot(journal_file, journal_offset, kernel.stats.inputs, kernel.to_state()), enc_hook=enc_hook)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    dfd = os.open(p.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot | None:
    p = Path(path)
    if not p.exists():
        return None
    try:
        return msgspec.json.decode(p.read_bytes(), type=Snapshot)
    except msgspec.DecodeError as exc:
        raise RuntimeError(f"{p}: snapshot is unreadable ({exc}); move it away to rebuild from the whole journal") from None


def recover(kernel: Kernel, journal_path: str | os.PathLike[str], snapshot_path: str | os.PathLike[str],
            bare_source: str = "", repair: bool = True) -> dict[str, Any]:  # fmt: skip
    """Rebuild ``kernel`` (strategies added and started, no journal attached yet) from the last
    snapshot and the journal tail. Returns what was done. ``repair`` cuts a torn last line (the
    daemon, before appending); ``repair=False`` only reads (``polybot state`` on a live journal)."""
    jp = Path(journal_path)
    cut = repair_tail(jp) if repair else 0
    snap = read_snapshot(snapshot_path)
    offset = 0
    if snap is not None:
        if Path(snap.journal_file).name != jp.name:
            logger.warning("snapshot refers to journal {}, not {}: ignoring it", snap.journal_file, jp)
        elif jp.exists() and snap.journal_offset > jp.stat().st_size:
            logger.warning("snapshot offset is past the end of {}: ignoring it", jp)
        else:
            kernel.restore(snap.state)
            offset = snap.journal_offset
    if not jp.exists():
        return {"snapshot": snap is not None and offset > 0, "tail_inputs": 0, "torn_bytes": cut}
    saved_journal, saved_exec = kernel.journal, kernel.executor
    kernel.journal = None
    if saved_exec.asynchronous:
        # its answers are inputs in the tail; a simulated executor (paper) recomputes its own
        kernel.set_executor(recorded_twin(saved_exec))
    n = 0
    try:
        reader = JournalReader(jp, bare_source=bare_source or "unknown", offset=offset)
        for kind, ts, source, payload in reader:
            if kind == ENGINE_EVENT:
                continue
            kernel.process(ts, source, payload)
            n += 1
    finally:
        kernel.journal = saved_journal
        kernel.set_executor(saved_exec)
    logger.info("recovered: snapshot={} (offset {}), {} journal inputs replayed", snap is not None and offset > 0, offset, n)
    return {"snapshot": offset > 0, "snapshot_offset": offset, "tail_inputs": n, "torn_bytes": cut}

