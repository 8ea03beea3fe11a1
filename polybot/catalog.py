"""The market catalog: reference data (``MarketInfo`` events) by market and by asset."""

from __future__ import annotations

from collections.abc import Iterator

from .events import MarketInfo, MarketResolved


class Catalog:
    def __init__(self) -> None:
        self._markets: dict[str, MarketInfo] = {}
        self._by_asset: dict[str, MarketInfo] = {}
        self._by_event: dict[str, dict[str, MarketInfo]] = {}  # event id -> market -> info
        self.resolved: dict[str, str] = {}  # market -> winning asset id

    def add(self, info: MarketInfo) -> None:
        old = self._markets.get(info.market)
        if old is not None and old.event_id and old.event_id != info.event_id:
            self._by_event.get(old.event_id, {}).pop(info.market, None)
        self._markets[info.market] = info
        for aid in info.asset_ids:
            self._by_asset[aid] = info
        if info.event_id:
            self._by_event.setdefault(info.event_id, {})[info.market] = info

    def event_markets(self, event_id: str) -> list[MarketInfo]:
        """The markets of one event (for a neg-risk event: its outcome markets), sorted by
        market id so iteration is deterministic."""
        ms = self._by_event.get(event_id)
        return [ms[k] for k in sorted(ms)] if ms else []

    def events(self) -> list[str]:
        """Every event id the catalog knows, sorted."""
        return sorted(self._by_event)

    def market(self, market: str) -> MarketInfo | None:
        return self._markets.get(market)

    def for_asset(self, asset_id: str) -> MarketInfo | None:
        return self._by_asset.get(asset_id)

    def market_of(self, asset_id: str, default: str | None = None) -> str:
        """The market (condition id) of an asset; ``default`` (else the asset id itself: an
        unknown asset is a market of its own) when the catalog does not know it."""
        info = self._by_asset.get(asset_id)
        if info is not None:
            return info.market
        return asset_id if default is None else default

    def outcomes(self, market_or_asset: str) -> tuple[tuple[str, ...], bool]:
        """The outcome tokens of a market (or of an asset's market) and whether they are its
        complete set (exactly one pays 1; not so in an augmented neg-risk event). An unknown
        asset is a market of its own, not complete (it may also pay nothing)."""
        info = self._markets.get(market_or_asset) or self._by_asset.get(market_or_asset)
        if info is None:
            return (market_or_asset,), False
        return info.asset_ids, not info.neg_risk_augmented

    def complement(self, asset_id: str) -> str | None:
        """The other token of a binary market (YES <-> NO)."""
        info = self._by_asset.get(asset_id)
        if info is None or len(info.asset_ids) != 2:
            return None
        a, b = info.asset_ids
        return b if asset_id == a else a

    def mark_resolved(self, ev: MarketResolved) -> None:
        self.resolved[ev.market] = ev.winning_asset_id

    def __iter__(self) -> Iterator[MarketInfo]:
        return iter(self._markets.values())

    def __len__(self) -> int:
        return len(self._markets)

    def to_state(self) -> list[MarketInfo]:
        return [self._markets[k] for k in sorted(self._markets)]

    def restore(self, infos: list[MarketInfo], resolved: dict[str, str]) -> None:
        self._markets.clear()
        self._by_asset.clear()
        self._by_event.clear()
        for i in infos:
            self.add(i)
        self.resolved = dict(resolved)
