"""The journal: what the kernel writes, what ``record`` writes and what ``replay`` reads.

One JSON object a line::

    {"ts": 1757908892351000000, "source": "polymarket.market", "msg": <frame exactly as received>}
    {"ts": 1757908892351000000, "source": "engine", "event": {"type": "intent", ...}}

``msg`` is the raw frame, copied byte for byte (a text frame such as ``PONG`` or invalid JSON is
stored as a JSON string, so no line is ever lost). Files of bare frames (one raw message per line,
no envelope) are read too, timed by the message's own timestamp through a per-source function.
``.gz`` files are read and written transparently. A torn last line (the writer was killed
mid-write) is skipped with a warning; reading streams the file in constant memory.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec
from loguru import logger

from .events import ENCODER, Event

ENGINE = "engine"
_SOURCE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

INPUT = 0
ENGINE_EVENT = 1


class Envelope(msgspec.Struct):
    ts: int
    source: str
    msg: msgspec.Raw = msgspec.Raw(b"")
    event: msgspec.Raw = msgspec.Raw(b"")


_ENV_DECODER = msgspec.json.Decoder(Envelope)
_RAW_DECODER = msgspec.json.Decoder(msgspec.Raw)  # validates without building objects


def check_source(name: str) -> str:
    if not _SOURCE_RE.fullmatch(name) or name == ENGINE:
        raise ValueError(f"invalid source name {name!r}")
    return name


def one_line(msg: bytes) -> bytes:
    """A JSON frame with raw line breaks (pretty-printed, or Polymarket's dump with its trailing
    newline) on one line: outside strings a line break is only whitespace, and inside a JSON
    string it cannot appear unescaped, so replacing it by a space keeps the frame's meaning."""
    return msg.strip().replace(b"\r\n", b" ").replace(b"\n", b" ").replace(b"\r", b" ")


def text_frame(raw: bytes | str) -> bytes:
    """JSON-string form of a frame that is not JSON (``PONG`` -> ``"PONG"``)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return msgspec.json.encode(raw)


class JournalWriter:
    """Appends lines to a journal file (plain or .gz) with explicit flush and fsync."""

    def __init__(self, path: str | os.PathLike[str], fsync: str = "orders", buffer_size: int = 1 << 16,
                 append: bool = True) -> None:  # fmt: skip
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync_policy = fsync
        self.gz = self.path.suffix == ".gz"
        self._raw: BinaryIO = open(self.path, "ab" if append else "wb")  # noqa: SIM115
        self._f: BinaryIO = gzip.GzipFile(filename="", fileobj=self._raw, mode="ab", mtime=0) if self.gz else self._raw  # type: ignore[assignment]
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._buffer_size = buffer_size
        self.lines = 0
        self.bytes = 0
        self.syncs = 0
        self._sources: dict[str, bytes] = {}

    def _source_prefix(self, source: str) -> bytes:
        p = self._sources.get(source)
        if p is None:
            p = self._sources[source] = b',"source":"' + check_source(source).encode() + b'","msg":'
        return p

    def write_input(self, ts: int, source: str, msg: bytes) -> None:
        if b"\n" in msg or b"\r" in msg:
            msg = one_line(msg)
        line = b'{"ts":' + str(ts).encode() + self._source_prefix(source) + msg + b"}\n"
        self._append(line)

    def write_event(self, event: Event) -> None:
        line = b'{"ts":' + str(event.ts).encode() + b',"source":"engine","event":' + ENCODER.encode(event) + b"}\n"
        self._append(line)

    def _append(self, line: bytes) -> None:
        self._buf.append(line)
        self._buf_bytes += len(line)
        self.lines += 1
        if self._buf_bytes >= self._buffer_size:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            data = b"".join(self._buf)
            self._f.write(data)
            self.bytes += len(data)
            self._buf.clear()
            self._buf_bytes = 0
        if self.gz:
            self._f.flush()  # type: ignore[call-arg]
        self._raw.flush()
        if self.fsync_policy == "always":
            os.fsync(self._raw.fileno())
            self.syncs += 1

    def sync(self) -> None:
        """Flush and fsync (write-ahead point: before an order leaves the process)."""
        self.flush()
        if self.fsync_policy != "never" and self.fsync_policy != "always":
            os.fsync(self._raw.fileno())
            self.syncs += 1

    def offset(self) -> int:
        """Byte offset of the end of what has been written (plain files)."""
        self.flush()
        return self._raw.tell()

    def close(self) -> None:
        try:
            self.flush()
            if self.fsync_policy != "never":
                os.fsync(self._raw.fileno())
        finally:
            if self.gz:
                self._f.close()
            self._raw.close()


class RotatingJournalWriter(JournalWriter):
    """A recorder's journal: parts ``<stem>-0001<suffixes>``, ``-0002``... each closed and a
    new one started when it reaches ``max_bytes`` (uncompressed) or spans ``max_seconds`` of
    input time. Every part is a complete journal on its own; ``on_rotate`` callbacks run after
    a new part is opened (the recorder asks its feeds for fresh book snapshots there, so each
    part replays from a snapshot)."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = 0, max_seconds: float = 0,
                 fsync: str = "never") -> None:  # fmt: skip
        self.base = Path(path)
        name = self.base.name
        self._suffix = "".join(self.base.suffixes[-2:]) if name.endswith(".jsonl.gz") else self.base.suffix
        self._stem = name[: len(name) - len(self._suffix)] if self._suffix else name
        self.max_bytes = max_bytes
        self.max_ns = int(max_seconds * 1e9)
        self.part = 1
        self.parts: list[Path] = []
        self.on_rotate: list[Callable[[Path], None]] = []
        self._part_start_ts = -1
        self._part_bytes = 0
        super().__init__(self._part_path(), fsync=fsync, append=False)
        self.parts.append(self.path)

    def _part_path(self) -> Path:
        return self.base.parent / f"{self._stem}-{self.part:04d}{self._suffix}"

    def write_input(self, ts: int, source: str, msg: bytes) -> None:
        if self._part_start_ts < 0:
            self._part_start_ts = ts
        elif (self.max_bytes and self._part_bytes >= self.max_bytes) or (
            self.max_ns and ts - self._part_start_ts >= self.max_ns
        ):
            self.rotate()
            self._part_start_ts = ts
        n0 = self._buf_bytes
        super().write_input(ts, source, msg)
        self._part_bytes += max(self._buf_bytes - n0, 0) or len(msg)

    def rotate(self) -> Path:
        self.close()
        self.part += 1
        self.path = self._part_path()
        self._raw = open(self.path, "wb")  # noqa: SIM115
        self._f = gzip.GzipFile(filename="", fileobj=self._raw, mode="ab", mtime=0) if self.gz else self._raw  # type: ignore[assignment]
        self._part_bytes = 0
        self.parts.append(self.path)
        logger.info("recording continues in {}", self.path)
        for cb in self.on_rotate:
            try:
                cb(self.path)
            except Exception:  # noqa: BLE001
                logger.exception("on_rotate callback failed")
        return self.path


def open_read(path: str | os.PathLike[str]) -> BinaryIO:
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return open(p, "rb", buffering=1 << 20)  # noqa: SIM115


def repair_tail(path: str | os.PathLike[str]) -> int:
    """Truncate a torn last line of a plain journal before appending to it; returns bytes cut."""
    p = Path(path)
    if not p.exists() or p.suffix == ".gz":
        return 0
    size = p.stat().st_size
    if size == 0:
        return 0
    with open(p, "rb+") as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        # find the last newline
        pos = size
        chunk = 1 << 16
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            i = data.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                f.truncate(cut)
                logger.warning("journal {}: cut a torn last line ({} bytes)", p, size - cut)
                return size - cut
            pos = start
        f.truncate(0)
        logger.warning("journal {}: cut a torn only line ({} bytes)", p, size)
        return size


BareTs = Callable[[bytes], "int | None"]


class ReadStats(msgspec.Struct):
    lines: int = 0
    inputs: int = 0
    engine: int = 0
    bare: int = 0
    corrupt: int = 0
    torn: int = 0
    bytes: int = 0


class JournalReader:
    """Streams records from a journal or bare-frame file.

    Yields ``(kind, ts, source, payload)`` with ``kind`` INPUT (payload = the raw msg bytes) or
    ENGINE_EVENT (payload = the event's JSON bytes). ``bare_source`` names the source of lines
    without an envelope; ``bare_ts`` extracts their time (ns) from the message, else the last
    time is reused. ``offset`` starts reading a plain file at a byte offset (recovery).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        bare_source: str = "polymarket.market",
        bare_ts: BareTs | None = None,
        offset: int = 0,
    ) -> None:
        self.path = Path(path)
        self.bare_source = bare_source
        self.bare_ts = bare_ts
        self.offset = offset
        self.stats = ReadStats()
        self.position = offset  # byte offset after the last line read (plain files)

    def __iter__(self) -> Iterator[tuple[int, int, str, bytes]]:
        st = self.stats
        env_decode = _ENV_DECODER.decode
        kind_known: str | None = None  # "envelope" or "bare"
        last_ts = 0
        bare_source = self.bare_source
        bare_ts = self.bare_ts
        with open_read(self.path) as f:
            pos = self.offset
            if pos:
                f.seek(pos - 1)
                if f.read(1) != b"\n":  # inside a line: resume at the next one
                    skipped = f.readline()
                    pos += len(skipped)
                    logger.warning("{}: offset {} is inside a line; resuming at {}", self.path, self.offset, pos)
            prev: bytes | None = None
            lines = iter(f)
            while True:
                try:
                    line = next(lines)
                except StopIteration:
                    break
                except (EOFError, OSError) as exc:  # a .gz cut short by a crash
                    logger.warning("{}: the file ends abruptly ({}); the rest is lost", self.path, exc)
                    st.torn += 1
                    break
                # we look one line ahead so that the last line can be judged torn or not
                if prev is not None:
                    if kind_known == "envelope":  # the common case, inlined
                        try:
                            env = env_decode(prev)
                        except msgspec.DecodeError:
                            env = None
                        if env is not None and env.source != ENGINE and env.msg:
                            st.lines += 1
                            st.inputs += 1
                            pos += len(prev)
                            self.position = pos
                            last_ts = env.ts
                            prev = line
                            yield INPUT, last_ts, env.source, bytes(env.msg)
                            continue
                    out = self._one(prev, False, env_decode, kind_known, last_ts, bare_source, bare_ts)
                    pos += len(prev)
                    self.position = pos
                    if out is not None:
                        kind_known = out[4] or kind_known
                        last_ts = out[1]
                        yield out[0], out[1], out[2], out[3]
                prev = line
            if prev is not None:
                out = self._one(prev, True, env_decode, kind_known, last_ts, bare_source, bare_ts)
                pos += len(prev)
                self.position = pos
                if out is not None:
                    yield out[0], out[1], out[2], out[3]
        st.bytes = pos - self.offset

    def _one(self, line, is_last, env_decode, kind_known, last_ts, bare_source, bare_ts):  # noqa: ANN001, ANN202
        st = self.stats
        st.lines += 1
        torn = is_last and not line.endswith(b"\n")
        body = line.strip()
        if not body:
            return None
        if kind_known != "bare":
            try:
                env = env_decode(body)
            except msgspec.DecodeError:
                env = None
            if env is not None:
                if env.source == ENGINE:
                    st.engine += 1
                    return ENGINE_EVENT, env.ts, ENGINE, bytes(env.event), "envelope"
                msg = bytes(env.msg)
                if msg:
                    st.inputs += 1
                    return INPUT, env.ts, env.source, msg, "envelope"
            if torn:
                st.torn += 1
                logger.warning("{}: skipped a torn last line ({} bytes)", self.path, len(line))
                return None
            if kind_known == "envelope" or (kind_known is None and body[:6] == b'{"ts":'):
                st.corrupt += 1
                if st.corrupt <= 5:
                    logger.warning("{}: skipped a corrupt line {} ({!r:.80})", self.path, st.lines, body)
                return None
        # a bare frame: JSON kept as is; anything else becomes a JSON string (never lost)
        try:
            _RAW_DECODER.decode(body)
            is_json = True
        except msgspec.DecodeError:
            is_json = False
        if not is_json and torn:
            st.torn += 1
            logger.warning("{}: skipped a torn last line ({} bytes)", self.path, len(line))
            return None
        msg = body if is_json else text_frame(body)
        ts = bare_ts(msg) if bare_ts is not None else None
        st.bare += 1
        st.inputs += 1
        # only a JSON line that is not an envelope says "this is a file of bare frames"
        return INPUT, (last_ts if ts is None else ts), bare_source, msg, ("bare" if is_json else None)
