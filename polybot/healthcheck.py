"""Health probe for a running polybot daemon: ``GET /critical`` on its API.

Exit 0 when the daemon answers 200 (trading active, feeds up, books healthy), 1 otherwise: a 503
(its reasons are printed: trading halted, a feed down, a book unhealthy for too long) or no
answer at all (not running, still starting, hung). Standard library only (and ``import polybot``
loads nothing heavy), so it runs in the python:3.11-slim image (no curl there) as the
Dockerfile's HEALTHCHECK, and from cron or any monitoring agent on the host.

    python -m polybot.healthcheck                                # http://127.0.0.1:8321/critical
    python -m polybot.healthcheck http://127.0.0.1:9000/critical # another address
    python -m polybot.healthcheck /var/lib/polybot/live          # a data dir: the URL from its api.json
    POLYBOT_HEALTH_URL=... python -m polybot.healthcheck

``/critical`` needs no token, even when the API listens on a non-loopback address. The API must
be enabled (``[api] enabled = true``).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8321/critical"


def target(arg: str | None) -> str:
    arg = arg or os.environ.get("POLYBOT_HEALTH_URL") or DEFAULT_URL
    p = Path(arg)
    if "://" not in arg and p.is_dir():  # a data dir: the running daemon wrote its URL there
        base = json.loads((p / "api.json").read_text())["url"]
        return base.rstrip("/") + "/critical"
    return arg


def probe(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - an operator-given URL
            return r.status == 200, f"ok ({url})"
    except urllib.error.HTTPError as exc:
        try:
            reasons = json.loads(exc.read() or b"{}").get("reasons") or []
        except ValueError:
            reasons = []
        return False, f"critical (HTTP {exc.code}): {'; '.join(map(str, reasons)) or exc.reason}"
    except (OSError, ValueError) as exc:  # refused, timed out, a bad URL
        return False, f"no answer from {url}: {getattr(exc, 'reason', None) or exc}"


def main(argv: list[str]) -> int:
    try:
        url = target(argv[1] if len(argv) > 1 else None)
    except (OSError, ValueError, KeyError) as exc:
        sys.stdout.write(f"no API address: {exc} (is the daemon running with [api] enabled?)\n")
        return 1
    ok, text = probe(url)
    sys.stdout.write(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
