"""Import captures made by other recorders, so they replay like our own journals.

Formats (``polybot import IN OUT --format ...``, and detected automatically by ``polybot replay``
from the first line):

* ``journal``: our own format (``{"ts","source","msg"}`` envelopes) or bare frames, one a line.
* ``received-at``: ``{"receivedAt": "<ISO time>", "payloadUtf8": "<raw frame text>"}`` one per
  WebSocket frame (e.g. adriancova's ``market-ws-frames-*.jsonl``).
* ``ws-session``: ``{"t": "<ISO time>", "dir": "open"|"send"|"recv", "data": "<raw text>"}``;
  only ``recv`` lines are inputs (what the client sent is not).

Every imported frame becomes an input of ``source`` (default ``polymarket.market``) at its
receive time; invalid JSON (``PONG``) is kept as a JSON string, exactly as the live door would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
from loguru import logger

from .clock import iso_to_ns
from .journal import INPUT, JournalWriter, ReadStats, open_read, text_frame

FORMATS = ("auto", "journal", "received-at", "ws-session")


class _ReceivedAt(msgspec.Struct):
    receivedAt: str  # noqa: N815 - the foreign key
    payloadUtf8: str  # noqa: N815


class _Session(msgspec.Struct):
    t: str
    dir: str
    data: Any = ""  # a string for frames; an object for "close" records


def detect_format(path: str | os.PathLike[str]) -> str:
    with open_read(Path(path)) as f:
        for line in f:
            if not line.strip():
                continue
            if b'"payloadUtf8"' in line and b'"receivedAt"' in line:
                return "received-at"
            if line.lstrip().startswith(b'{"t"') and b'"dir"' in line:
                return "ws-session"
            return "journal"
    return "journal"


def _json_or_text(raw: str) -> bytes:
    b = raw.encode()
    try:
        msgspec.json.decode(b)
    except msgspec.DecodeError:
        return text_frame(b)
    return b.replace(b"\n", b"").replace(b"\r", b"") if (b"\n" in b or b"\r" in b) else b


class ForeignReader:
    """Yields ``(INPUT, ts, source, msg)`` like :class:`polybot.journal.JournalReader`."""

    def __init__(self, path: str | os.PathLike[str], fmt: str, source: str = "polymarket.market") -> None:
        if fmt not in ("received-at", "ws-session"):
            raise ValueError(f"unknown import format {fmt!r}")
        self.path = Path(path)
        self.fmt = fmt
        self.source = source
        self.stats = ReadStats()
        self.position = 0

    def __iter__(self) -> Iterator[tuple[int, int, str, bytes]]:
        st = self.stats
        dec = msgspec.json.Decoder(_ReceivedAt if self.fmt == "received-at" else _Session)
        last_ts = 0
        with open_read(self.path) as f:
            for line in f:
                st.lines += 1
                self.position += len(line)
                body = line.strip()
                if not body:
                    continue
                try:
                    rec = dec.decode(body)
                    if isinstance(rec, _ReceivedAt):
                        ts, raw = iso_to_ns(rec.receivedAt), rec.payloadUtf8
                    else:
                        if rec.dir != "recv" or not isinstance(rec.data, str):
                            continue
                        ts, raw = iso_to_ns(rec.t), rec.data
                except (msgspec.DecodeError, ValueError) as exc:
                    st.corrupt += 1
                    if st.corrupt <= 5:
                        logger.warning("{}: skipped line {} ({})", self.path, st.lines, exc)
                    continue
                ts = max(ts, last_ts)
                last_ts = ts
                st.inputs += 1
                yield INPUT, ts, self.source, _json_or_text(raw)
        st.bytes = self.position


def import_file(src: str | os.PathLike[str], out: str | os.PathLike[str], fmt: str = "auto",
                source: str = "polymarket.market") -> int:  # fmt: skip
    """Convert a foreign capture into a journal; returns the number of inputs written."""
    if fmt == "auto":
        fmt = detect_format(src)
    if fmt == "journal":
        raise ValueError(f"{src} is already a journal or bare frames: replay it directly")
    w = JournalWriter(out, fsync="never", append=False)
    n = 0
    try:
        for _, ts, source_, msg in ForeignReader(src, fmt, source):
            w.write_input(ts, source_, msg)
            n += 1
    finally:
        w.close()
    return n
