"""Sportsbook odds adapters: The Odds API v4 (:mod:`adapters.odds.theoddsapi`), polled over REST
into :class:`polybot.events.OddsQuote` events (decimal odds, one per event, bookmaker, market and
outcome)."""

from __future__ import annotations

from .theoddsapi import DECODER, SOURCE, OddsApiFeed, american_to_decimal, decimal_from, odds_input

__all__ = ["DECODER", "SOURCE", "OddsApiFeed", "american_to_decimal", "decimal_from", "odds_input"]
