"""Where the recorded Polymarket samples are: ``../shared/samples`` beside the checkout (the
shared folder travels with the project), or ``POLYBOT_SAMPLES``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SAMPLES = Path(os.environ.get("POLYBOT_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "samples"))
H1 = SAMPLES / "adriancova" / "market-ws-frames-h1-run-8.jsonl"
V2S = SAMPLES / "adriancova" / "ws-market-v2-session.jsonl"
POLYTOPE = SAMPLES / "edirent" / "Polytope__market_39.jsonl"


def require_samples() -> None:
    """Skip the calling test module when the samples are not there."""
    if not SAMPLES.is_dir():  # pragma: no cover
        pytest.skip(f"samples not found at {SAMPLES}", allow_module_level=True)
