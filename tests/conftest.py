"""Session-wide test set-up.

The daemon's account lock lives in a machine-wide directory (polybot.instance). The tests get
their own, for this session only (daemons started as subprocesses inherit it): a test run
never collides with a live daemon on this machine, nor with another test run using the same
test keys, and leaves nothing behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_LOCK_DIR = tempfile.mkdtemp(prefix="polybot-test-locks-")
os.environ["POLYBOT_LOCK_DIR"] = _LOCK_DIR  # even when the shell sets one: never the real one
atexit.register(shutil.rmtree, _LOCK_DIR, True)
