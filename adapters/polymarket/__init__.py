"""Polymarket adapters: market-channel wire decoding, the WebSocket market feed, the Gamma
catalog, REST book snapshots and the local exchange simulator."""
