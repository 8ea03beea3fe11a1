"""Polymarket US (the regulated exchange, api.polymarket.us): market data, catalog, live
executor and a local simulator, all speaking the API of Polymarket's official Python SDK
``polymarket-us`` (2.4.1; its source is the reference for every message shape used here).

How this venue maps onto the engine's one vocabulary (the same typed events as the CLOB):

* **Ids.** The venue prefix is ``pmus``. A market is ``pmus:<slug>``; it has two assets,
  ``pmus:<slug>:long`` (YES, outcome index 0) and ``pmus:<slug>:short`` (NO). Every strategy
  and validator sees a binary market with two tokens, exactly like a CLOB market.
* **One instrument.** The venue has ONE book per market, in YES (long) terms: ``bids`` and
  ``offers`` of ``{"px": {"value": "0.54", "currency": "USD"}, "qty": "1000"}``. The long
  asset's book is that book; the short asset's book is its mirror (a YES bid at p for q is a
  NO ask at 1 - p for q, a YES offer at p is a NO bid at 1 - p).
* **Prices in orders are YES-side.** BUY long at p -> ``ORDER_INTENT_BUY_LONG`` at p; SELL long
  -> ``SELL_LONG`` at p; BUY short (NO) at p -> ``BUY_SHORT`` at 1 - p; SELL short ->
  ``SELL_SHORT`` at 1 - p. Fills (``lastPx``, ``avgPx``) are YES-side too: a short fill at
  ``lastPx`` x is a NO fill at 1 - x.
* **Net positions.** The venue keeps one signed ``netPosition`` per market (negative = short =
  NO held); ``MarketInfo.netting`` is set, so the portfolio merges a YES+NO pair at once, as
  the venue does; reconciliation compares the venue's net with long - short.
* **Units.** Prices and quantities are decimal strings; the engine's integers have 6 decimals
  (:func:`polybot.units.to_units`).
* **Auth.** Ed25519: headers ``X-PM-Access-Key`` (key id), ``X-PM-Timestamp`` (ms) and
  ``X-PM-Signature`` = base64(sign(timestamp + METHOD + path)), path without the query
  (:mod:`.auth`). The WebSockets (``/v1/ws/markets``, ``/v1/ws/private``) sign the handshake
  with method ``GET``.

Sources: ``polymarket_us.market`` (markets WebSocket frames), ``polymarket_us.rest`` (REST
answers the feed fetched: books, markets, events), ``polymarket_us.private`` (private WebSocket
frames, journaled); the executor answers as ``exec.pmus``.
"""

from __future__ import annotations

VENUE = "pmus"
LONG = "long"
SHORT = "short"

MARKET_SOURCE = "polymarket_us.market"
REST_SOURCE = "polymarket_us.rest"
PRIVATE_SOURCE = "polymarket_us.private"


def market_id(slug: str) -> str:
    return f"{VENUE}:{slug}"


def asset_ids(slug: str) -> tuple[str, str]:
    """(long / YES, short / NO) asset ids of a market slug."""
    return f"{VENUE}:{slug}:{LONG}", f"{VENUE}:{slug}:{SHORT}"


def parse_asset(asset_id: str) -> tuple[str, bool] | None:
    """(slug, is_long) of one of this venue's asset ids; None for anything else."""
    if not asset_id.startswith(VENUE + ":"):
        return None
    rest = asset_id[len(VENUE) + 1 :]
    slug, sep, side = rest.rpartition(":")
    if not sep or not slug or side not in (LONG, SHORT):
        return None
    return slug, side == LONG


def slug_of_market(market: str) -> str | None:
    """The slug of a ``pmus:<slug>`` market id; None for another venue's id."""
    if not market.startswith(VENUE + ":"):
        return None
    return market[len(VENUE) + 1 :] or None
