"""Fair probabilities for sports markets: bookmaker odds and live win-probability models.

:mod:`polybot.sports.odds` converts and de-vigs bookmaker prices and builds a consensus across
books (the pregame prior); :mod:`polybot.sports.winprob` turns the prior, the live score and the
game clock into fair probabilities for moneyline, spread and total markets. Pure functions and
immutable models, standard library only: safe to call from a strategy's event handlers.
"""

from polybot.sports.odds import (
    SHARP_BOOKS,
    Consensus,
    DevigMethod,
    american_to_decimal,
    consensus,
    consensus_from_prices,
    decimal_to_american,
    devig,
    devig_multiplicative,
    devig_power,
    implied_probabilities,
    implied_probability,
    overround,
)
from polybot.sports.winprob import (
    LEAGUES,
    SUPPORTED_SPORTS,
    GameModel,
    LeagueSpec,
    MarginModel,
    PoissonModel,
    fair_probability,
    league_spec,
    norm_cdf,
    norm_ppf,
    time_remaining,
)

__all__ = [
    "LEAGUES",
    "SHARP_BOOKS",
    "SUPPORTED_SPORTS",
    "Consensus",
    "DevigMethod",
    "GameModel",
    "LeagueSpec",
    "MarginModel",
    "PoissonModel",
    "american_to_decimal",
    "consensus",
    "consensus_from_prices",
    "decimal_to_american",
    "devig",
    "devig_multiplicative",
    "devig_power",
    "fair_probability",
    "implied_probabilities",
    "implied_probability",
    "league_spec",
    "norm_cdf",
    "norm_ppf",
    "overround",
    "time_remaining",
]
