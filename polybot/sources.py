"""Input sources by name: which decoder turns a source's messages into events.

Built in: ``events`` (ready-made polybot events), ``control``, ``clock`` and ``exec.*`` (executor
responses). Adapters register theirs in the entry-point group ``polybot.sources``; the value is
either a decoder function ``(msg: bytes, ts: int) -> Sequence[Event]`` or an object with a
``decode`` method of that shape and, optionally, ``bare_ts(msg: bytes) -> int | None`` (the
message's own time in ns, used to time recordings of bare frames).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from loguru import logger

from .journal import BareTs
from .kernel import BUILTIN_DECODERS, Decoder

GROUP = "polybot.sources"


@cache
def _load(name: str) -> Any:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            try:
                return ep.load()
            except Exception:  # noqa: BLE001 - a broken plugin must not kill a replay
                logger.exception("cannot load source {!r} ({})", name, ep.value)
                return None
    return None


def resolve_decoder(name: str) -> Decoder | None:
    if name in BUILTIN_DECODERS:
        return BUILTIN_DECODERS[name]
    obj = _load(name)
    if obj is None:
        return None
    return getattr(obj, "decode", obj)


def bare_ts_for(name: str) -> BareTs | None:
    obj = _load(name)
    return getattr(obj, "bare_ts", None) if obj is not None else None


def installed_sources() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}
