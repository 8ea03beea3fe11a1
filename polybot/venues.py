"""Which venue a market trades on, read from its id: nothing else in the engine knows venues.

A market id (and each of its asset ids) carries its venue as a prefix: ``"<venue>:<rest>"``
with ``<venue>`` a short lower-case word (letters, digits, ``_``/``-``). An id without such a
prefix (a Polymarket CLOB condition id ``0x...`` or a token id of digits) is on the default
venue, ``""``. The executor router (:mod:`polybot.execution.router`) sends each order to the
executor configured for its venue, and a strategy's ``venues`` list (its config table) limits
where it may trade.
"""

from __future__ import annotations

DEFAULT = ""


def venue_of(market_or_asset: str) -> str:
    """The venue prefix of a market or asset id, ``""`` for the default venue."""
    i = market_or_asset.find(":", 1, 17)
    if i < 0:
        return DEFAULT
    head = market_or_asset[:i]
    if head[0].isalpha() and head.islower() and all(c.isalnum() or c in "_-" for c in head):
        return head
    return DEFAULT


def check_name(venue: str) -> bool:
    """True if ``venue`` can be a venue prefix (config validation)."""
    return venue == DEFAULT or (venue_of(venue + ":x") == venue)
