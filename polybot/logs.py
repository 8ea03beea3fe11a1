"""Logging setup (loguru): human lines on stderr, or JSON lines; optional file sink.

``diagnose`` is always off: loguru would otherwise print local variables in tracebacks, and a
local variable can hold a credential. Secrets are never passed to a log call.
"""

from __future__ import annotations

import sys

from loguru import logger

FORMAT = "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{name}</cyan> {message}"


def setup_logging(level: str = "INFO", json: bool = False, file: str = "") -> None:
    logger.remove()
    logger.add(sys.stderr, level=level, serialize=json, format=FORMAT if not json else "{message}",
               diagnose=False, backtrace=False, colorize=None if not json else False)  # fmt: skip
    if file:
        logger.add(file, level=level, serialize=True, diagnose=False, backtrace=False,
                   rotation="100 MB", retention=10, enqueue=False)  # fmt: skip
