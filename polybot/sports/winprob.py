"""Live win, cover and over probabilities from the score, the clock and a pregame prior.

Two model families, one interface (:class:`GameModel`); :meth:`GameModel.for_sport` builds the
right one for a sport and league from the bookmakers' pregame prices, and
:func:`fair_probability` answers for one outcome of one Polymarket market. Pure functions of
their inputs, standard library only; a model is solved once per game (at construction) and then
costs a few floating-point operations per call (margin) or one short loop (Poisson), with
nothing allocated but the result, so it can run in an event handler.

Time
----
``tau`` is the fraction of *regulation* time still to play: 1 at the start, 0.5 at half-time,
0 at the end of regulation. Overtime is measured in the same unit (an NBA overtime of 5 minutes
is ``5 / 48`` of a regulation game), so in overtime ``tau`` starts again at ``OT / regulation``
and runs down to 0; the models treat it as more game to play, which it is (``tau = 0`` during
overtime would price a tied game as a coin flip with no regard to the time left).
:func:`time_remaining` computes ``tau`` from the sports feed's fields and returns None when they
cannot be read; the caller must then not trade on the model.

Margin model (basketball, American football; hockey as an option)
-----------------------------------------------------------------
Stern (1994), "A Brownian Motion Model for the Progress of Sports Scores", JASA 89(427):1128-34.
The home lead ``X(t)`` (home minus away points) is a Brownian motion with drift ``mu`` points per
regulation game and volatility ``sigma`` points per square-root game. With lead ``l`` and
``tau`` left, the final margin is ``M = l + mu*tau + sigma*sqrt(tau)*Z``, ``Z ~ N(0, 1)``:

* ``P(home wins) = Phi((l + mu*tau) / (sigma*sqrt(tau)))``. A continuous margin is never exactly
  0, so a tie has no mass while time remains; at ``tau = 0`` the result is the sign of the lead
  and a tie is 0.5 (it goes to another overtime, priced as a coin flip).
* The prior: ``mu = sigma * Phi^-1(p0)`` from the pregame home win probability ``p0`` (de-vigged
  bookmaker moneyline), or ``mu = -spread`` from a pregame home spread (home -5.5 -> mu = 5.5).
* Spreads: ``P(M + line > 0)`` for a line on the home side. Totals: a separate Brownian motion
  for the total, ``T = so_far + rate*tau + sigma_total*sqrt(tau)*Z`` where ``rate`` is the
  expected full-game total (a bookmaker's total line, else the league's mean).

Hockey can be priced with this model too (``model="margin"``, Poisson-consistent volatilities
from the table); a regulation tie is then a coin flip at ``tau = 0`` and adds no goal to the
total.

Assumptions: constant scoring rate and volatility through the game (no end-of-game fouling or
garbage time, no possession value: the NFL's ``turn`` is ignored), normal increments (scores
are discrete; a half-point line is unaffected, a whole-number line's push probability is not
modelled while time remains), independent of the score. ``sigma`` is the standard deviation
of the final margin *about the pregame line* (what remains unexplained by team strength), not
the raw spread of margins.

Poisson model (soccer; hockey)
------------------------------
Maher (1982), "Modelling association football scores", Statistica Neerlandica 36(3):109-18;
Dixon & Coles (1997), JRSS C 46(2):265-80. The goals each side still scores are independent
Poisson variables with means ``lambda_home * tau`` and ``lambda_away * tau``, where
``lambda_home = s * G`` and ``lambda_away = (1 - s) * G``: ``G`` is the expected full-game total
(a bookmaker's total line, else the league's mean) and the home share ``s`` is solved (Illinois
regula falsi, to 1e-13) so that the model's pregame home win probability equals ``p0``. If the
regulation draw probability is also given, ``G`` is solved as well (an outer solve: more goals,
fewer draws), so the model reproduces both prices and ``total`` must not be given.

* Soccer settles on regulation (90 minutes plus stoppage time): ``probs`` is the three-way
  (home, draw, away); extra time and penalties are not modelled (``tau = 0`` there).
* Hockey moneylines include overtime and the shootout: a game tied after regulation goes to the
  home side with probability ``s`` (the chance that home scores the next goal, used for the
  shootout too), so ``p_home_win = P(home leads) + s * P(tied)``. Overtime is played as a short
  extra period (``tau`` from :func:`time_remaining`) in which the same Poisson rates apply,
  an approximation of sudden death (whose tied value is exactly ``s``; the model's differs
  from it by a fraction of a percentage point, and not at all for evenly matched sides). The
  overtime or shootout winner's goal counts for spreads and totals (NHL final scores add it).
  :meth:`PoissonModel.regulation_probs` gives the 60-minute three-way result.

Assumptions: constant scoring rates, independent goals (no score effects, no red cards, no
empty-net goals; Dixon & Coles note that the independent model slightly under-predicts 0-0 and
1-1 draws). Whole-number lines count a push as half a win, quarter lines (x.25, x.75) are split
into their two half stakes: that is the fair value of a share a push resolves 50-50.

Calibration
-----------
The per-league parameters live in :data:`LEAGUES` (sources in the comments). Values marked
*approx.* are rounded practitioner figures for recent seasons: recalibrate them from recordings
of the sports feed and closing lines before relying on them for size.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Literal

__all__ = [
    "LEAGUES",
    "SUPPORTED_SPORTS",
    "GameModel",
    "LeagueSpec",
    "MarginModel",
    "PoissonModel",
    "fair_probability",
    "league_spec",
    "norm_cdf",
    "norm_ppf",
    "time_remaining",
]

ModelKind = Literal["margin", "poisson"]
MarketType = Literal["moneyline", "h2h", "spreads", "totals"]

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_STD_NORMAL = NormalDist()


def norm_cdf(x: float) -> float:
    """The standard normal distribution function ``Phi(x)`` (via ``erfc``: accurate in both
    tails)."""
    return 0.5 * math.erfc(-x * _SQRT1_2)


def norm_ppf(p: float) -> float:
    """The standard normal quantile ``Phi^-1(p)`` for ``0 < p < 1`` (Wichura's AS241, via
    :class:`statistics.NormalDist`). Raises :class:`ValueError` outside (0, 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {p!r}")
    return _STD_NORMAL.inv_cdf(p)


# ------------------------------------------------------------------------------------------
# Calibration table
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeagueSpec:
    """Game structure and model parameters of one league.

    ``periods`` x ``period_s`` seconds of regulation; ``ot_s`` is one overtime period's length
    (None: overtime is untimed, as in college football, or does not count, as in soccer).
    ``model`` is the default model family. ``sigma_margin``: standard deviation of the final
    margin about the pregame line, in points (goals) per regulation game. ``mean_total``: the
    expected full-game total used when no bookmaker total is given. ``sigma_total``: the
    standard deviation of the final total about its expectation (margin model only).
    """

    sport: str
    league: str
    periods: int
    period_s: int
    ot_s: int | None
    model: ModelKind
    sigma_margin: float
    mean_total: float
    sigma_total: float

    @property
    def regulation_s(self) -> int:
        """Regulation length in seconds."""
        return self.periods * self.period_s


#: Supported sport families (the ``sport`` field of :class:`polybot.events.GameState`).
SUPPORTED_SPORTS: tuple[str, ...] = ("basketball", "football", "hockey", "soccer")

# A few spellings of the families seen in odds feeds.
_SPORT_ALIASES: dict[str, str] = {
    "american football": "football",
    "american_football": "football",
    "americanfootball": "football",
    "ice hockey": "hockey",
    "ice_hockey": "hockey",
    "icehockey": "hockey",
    "association football": "soccer",
}

# fmt: off
#: League -> spec. The entry named after a sport is its default, for the leagues not listed.
#:
#: Margin sigmas (final margin about the pregame line):
#:   NFL 13.86: Stern (1991), "On the Probability of Winning a Football Game", The American
#:     Statistician 45(3):179-83 (1981, 1983, 1984 NFL seasons: margin over the point spread
#:     ~ N(0, 13.86)).
#:   NBA 12, NCAA basketball 10, college football 16: Sagarin's historical standard deviations
#:     of results about a rating prediction, as quoted in Winston, "Mathletics" (2009), ch. 43.
#:     (For scale: the raw, unconditional NBA margin sd is ~14 over 2013-2023, sport12x.com.)
#:   WNBA, women's college, FIBA 4x10 leagues 11: approx., the NBA value scaled by
#:     sqrt(40/48) for the shorter game (12 * 0.913 = 10.95).
#: Totals (mean_total = league average of recent seasons, approx.; sigma_total = sd of the final
#:   total about the closing total, approx.: the raw NBA total sd is 20-21 over 2013-2023,
#:   sport12x.com, of which the closing total explains the pace and strength part).
#: Goal sports: independent Poisson goals; sigma_margin = sigma_total = sqrt(mean_total), the
#:   Poisson-consistent values, used only if a hockey game is priced with the margin model.
#: Game length: NBA 4x12 min, WNBA 4x10, NCAA men 2x20, NCAA women 4x10, FIBA 4x10, overtime
#:   5 min in all of them; NFL and NCAAF 4x15, NFL regular-season overtime 10 min (playoffs 15:
#:   pass overtime_s), NCAAF overtime untimed; NHL 3x20, regular-season overtime 5 min
#:   (playoffs 20: pass overtime_s); soccer 2x45, extra time not part of regulation markets.
LEAGUES: dict[str, LeagueSpec] = {
    #                       sport         league  periods period_s ot_s model sigma  total  sd_total
    "nba":      LeagueSpec("basketball", "nba",      4, 720,  300,  "margin", 12.0, 228.0, 18.0),
    "wnba":     LeagueSpec("basketball", "wnba",     4, 600,  300,  "margin", 11.0, 164.0, 15.0),
    "ncaab":    LeagueSpec("basketball", "ncaab",    2, 1200, 300,  "margin", 10.0, 145.0, 16.0),
    "ncaaw":    LeagueSpec("basketball", "ncaaw",    4, 600,  300,  "margin", 11.0, 135.0, 15.0),
    "basketball": LeagueSpec("basketball", "",       4, 600,  300,  "margin", 11.0, 160.0, 16.0),
    "nfl":      LeagueSpec("football",   "nfl",      4, 900,  600,  "margin", 13.86, 45.0, 13.5),
    "ncaaf":    LeagueSpec("football",   "ncaaf",    4, 900,  None, "margin", 16.0,  55.0, 16.5),
    "football": LeagueSpec("football",   "",         4, 900,  None, "margin", 13.86, 45.0, 13.5),
    "nhl":      LeagueSpec("hockey",     "nhl",      3, 1200, 300,  "poisson", 2.45,  6.0, 2.45),
    "hockey":   LeagueSpec("hockey",     "",         3, 1200, 300,  "poisson", 2.45,  6.0, 2.45),
    "soccer":   LeagueSpec("soccer",     "",         2, 2700, None, "poisson", 1.61,  2.6, 1.61),
}
# fmt: on

# Feed and odds-API spellings of the listed leagues.
_LEAGUE_ALIASES: dict[str, str] = {
    "cbb": "ncaab",
    "ncaam": "ncaab",
    "ncaamb": "ncaab",
    "mens-college-basketball": "ncaab",
    "cwbb": "ncaaw",
    "wcbb": "ncaaw",
    "wncaab": "ncaaw",
    "ncaawb": "ncaaw",
    "womens-college-basketball": "ncaaw",
    "cfb": "ncaaf",
    "college-football": "ncaaf",
}


def league_spec(sport: str, league: str = "") -> LeagueSpec:
    """The :class:`LeagueSpec` of ``league`` in ``sport`` (case-insensitive).

    A league that is not listed (or listed under another sport) gets the sport's default spec
    (FIBA structure for basketball, NFL for football without timed overtime, NHL for hockey, 2x45
    for soccer, every soccer league sharing it). Odds-API keys such as ``basketball_nba`` are
    read by their suffix. Raises :class:`ValueError` for an unsupported sport, naming the
    supported ones.
    """
    family = _sport_family(sport)
    key = league.strip().lower()
    for candidate in (key, key.split("_", 1)[1] if "_" in key else ""):
        name = _LEAGUE_ALIASES.get(candidate, candidate)
        spec = LEAGUES.get(name)
        if spec is not None and spec.sport == family and name:
            return spec
    return LEAGUES[family]


def _sport_family(sport: str) -> str:
    key = sport.strip().lower()
    family = _SPORT_ALIASES.get(key, key)
    if family not in SUPPORTED_SPORTS:
        raise ValueError(
            f"unsupported sport {sport!r}: supported are {', '.join(SUPPORTED_SPORTS)}"
        )
    return family


# ------------------------------------------------------------------------------------------
# Game time
# ------------------------------------------------------------------------------------------

_FINAL_RE = re.compile(r"^(FT.*|F|F/OT|F/SO|FINAL.*|ENDED|FULLTIME|FULL_TIME|AET|AP)$")
_REG_RE = re.compile(
    r"^(?:Q([1-9])|([1-9])Q|([1-9])H|H([1-9])|P([1-9])|([1-9])P|([1-9])(?:ST|ND|RD|TH))$"
)
_OT_RE = re.compile(r"^(?:OT|([1-9][0-9]?)OT|OT([1-9][0-9]?))$")
#: Soccer after regulation: extra time (and the break before it), penalties.
_SOCCER_ET = frozenset({"ET", "ET1", "ET2", "1ET", "2ET", "BT", "PEN", "PENS", "PSO"})
_PREGAME = frozenset({"NS", "PRE", "PREGAME", "SCHEDULED", "NOT STARTED"})


@lru_cache(maxsize=256)
def _parse_period(period: str) -> tuple[str, int]:
    """(kind, number) of a period label: kind in final, half, pre, so, et, ot, q, h, p, n, ?."""
    p = " ".join(period.strip().upper().split())
    if p in _PREGAME:
        return "pre", 0
    if p == "HT" or p == "HALFTIME" or p == "HALF":
        return "half", 0
    if p == "SO":
        return "so", 0
    compact = p.replace(" ", "")
    if _FINAL_RE.match(compact):
        return "final", 0
    if compact in _SOCCER_ET:
        return "et", 0
    m = _OT_RE.match(compact)
    if m:
        return "ot", int(m.group(1) or m.group(2) or 1)
    m = _REG_RE.match(compact)
    if m:
        groups = m.groups()
        for kind, value in zip(("q", "q", "h", "h", "p", "p", "n"), groups):
            if value is not None:
                return kind, int(value)
    return "?", 0


def time_remaining(
    sport: str,
    league: str,
    period: str,
    elapsed_s: int | None,
    elapsed_scope: str,
    *,
    overtime_s: int | None = None,
) -> float | None:
    """``tau``, the fraction of regulation time left, from the sports feed's fields, or None.

    ``period`` as the feed writes it: ``Q1``..``Q4`` / ``1Q``..``4Q`` (quarters), ``1H`` /
    ``2H`` (halves), ``P1``..``P3`` / ``1P``..``3P`` (hockey periods), ``1st``..``4th``, ``HT``,
    ``OT`` / ``OT2`` / ``2OT``, ``SO``, ``FT`` / ``FT OT`` / ``Final``, soccer ``ET1`` / ``ET2``
    / ``PEN``. ``elapsed_s`` is the clock in seconds (None = not stated) and ``elapsed_scope``
    says what it counts: ``"period"`` (time elapsed in the current period, the feed's ``MM:SS``)
    or ``"match"`` (time since kick-off, the soccer minute); ``""`` means the sport's usual
    scope (soccer: match, the others: period).

    Rules:

    * regulation: ``tau = (periods after this one * period + time left in this one) /
      regulation``; the clock is clamped to the period, so stoppage time (soccer ``90+3``,
      ``45+2`` in the first half) gives the period's end, never a negative remainder;
    * soccer's clock never restarts at half-time: a ``"period"``-scoped second-half clock of
      45:00 or more is read as match time (the feed writes ``"67:12"`` in the second half);
    * ``HT`` is exactly 0.5 (sports with halves or quarters); final labels are 0.0;
      soccer extra time and penalties are 0.0 (regulation markets are settled); a shootout is
      0.0; pregame labels (``NS``, ``Scheduled``) are 1.0;
    * overtime period ``k`` of length ``OT`` (the league's, or ``overtime_s``):
      ``tau = (OT - elapsed in it) / regulation``, so ``tau`` rises from 0 at the end of
      regulation to ``OT / regulation`` and runs down again (see the module docstring);
    * None when the fields cannot be read: an unsupported sport, an unknown label, a label
      that does not fit the league (``Q3`` in two-half college basketball, ``Q5``), a missing
      or negative clock inside a running period, an unknown scope, overtime in a league whose
      overtime is untimed (college football). The caller must not trade on the model then.

    Within a period ``tau`` is non-increasing as the clock runs, and across regulation periods
    too; entering overtime raises it from 0 (time has been added to the game).
    """
    try:
        spec = league_spec(sport, league)
    except ValueError:
        return None
    kind, n = _parse_period(period)
    soccer = spec.sport == "soccer"
    if kind == "final":
        return 0.0
    if kind == "pre":
        return 1.0
    if kind == "half":
        return 0.5 if spec.periods % 2 == 0 else None
    if kind == "so":
        return 0.0 if spec.sport == "hockey" else None
    if kind == "et":
        return 0.0 if soccer else None
    if kind == "?":
        return None
    if kind == "ot" and soccer:
        return 0.0
    scope = elapsed_scope or ("match" if soccer else "period")
    if scope not in ("period", "match") or elapsed_s is None or elapsed_s < 0:
        return None
    regulation = spec.regulation_s
    if kind == "ot":
        ot = overtime_s if overtime_s is not None else spec.ot_s
        if ot is None or ot <= 0:
            return None
        start = regulation + (n - 1) * ot
        e = elapsed_s - start if scope == "match" else elapsed_s
        return (ot - min(max(e, 0), ot)) / regulation
    # Regulation period n: its label must fit the league's structure.
    if (
        n < 1
        or n > spec.periods
        or (kind == "q" and spec.periods != 4)
        or (kind == "h" and spec.periods != 2)
        or (kind == "p" and spec.periods != 3)
    ):
        return None
    length = spec.period_s
    start = (n - 1) * length
    if scope == "match" or (soccer and n > 1 and elapsed_s >= start):
        e = elapsed_s - start
    else:
        e = elapsed_s
    left = (spec.periods - n) * length + (length - min(max(e, 0), length))
    return left / regulation


# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------


def _check_tau(tau: float) -> None:
    if not 0.0 <= tau <= 1.0:  # also rejects NaN
        raise ValueError(f"tau must be in [0, 1], got {tau!r}")


def _check_prob(name: str, p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {p!r}")


def _step(x: float) -> float:
    """Settlement value of ``margin over the line = x`` at the end: win, push (half), loss."""
    return 1.0 if x > 0.0 else (0.0 if x < 0.0 else 0.5)


def _is_quarter(line: float) -> bool:
    """A quarter line (x.25 / x.75), settled as two half stakes on the adjacent lines."""
    frac = abs(line) % 0.5
    return abs(frac - 0.25) < 1e-9


class GameModel(ABC):
    """Fair probabilities for one game, from the home side's point of view.

    ``lead`` is home score minus away score; ``tau`` the fraction of regulation time left
    (:func:`time_remaining`). ``line`` in :meth:`p_cover` is the handicap on the home side
    (home -3.5 -> ``-3.5``); in :meth:`p_over` it is the total line. Every method returns a
    probability in [0, 1] and raises :class:`ValueError` for ``tau`` outside [0, 1].
    """

    spec: LeagueSpec

    @staticmethod
    def for_sport(
        sport: str,
        league: str = "",
        p0_home: float | None = None,
        *,
        spread: float | None = None,
        total: float | None = None,
        p_draw: float | None = None,
        model: ModelKind | None = None,
        sigma: float | None = None,
        sigma_total: float | None = None,
    ) -> GameModel:
        """The model of one game of ``sport`` / ``league`` solved from the pregame prior.

        ``p0_home``: the de-vigged pregame probability that the home side wins the moneyline
        (for soccer: wins in regulation, the three-way home price; for hockey: the two-way
        price, overtime included). ``spread``: instead of ``p0_home`` (margin model only), the
        pregame spread on the home side (home -5.5 -> ``-5.5``). ``total``: the pregame
        expected total (a bookmaker's total line), else the league's mean. ``p_draw``: the
        pregame regulation draw probability (Poisson model only): the expected total is then
        solved from it and ``total`` must be None. ``model`` overrides the league's default
        family (``"margin"`` is allowed for hockey only: basketball and football have no
        goal model, and a margin model cannot price soccer's draw). ``sigma`` /
        ``sigma_total`` override the table's volatilities (margin model).

        Raises :class:`ValueError` for an unsupported sport (naming the supported ones), an
        inconsistent or out-of-range prior, or a prior that the model cannot reproduce.
        """
        spec = league_spec(sport, league)
        kind = model or spec.model
        if kind not in ("margin", "poisson"):
            raise ValueError(f"unknown model {model!r}: use 'margin' or 'poisson'")
        if kind != spec.model and spec.sport != "hockey":
            raise ValueError(f"{spec.sport} is priced with the {spec.model} model only")
        if total is not None and not (math.isfinite(total) and total > 0.0):
            raise ValueError(f"total must be finite and > 0, got {total!r}")
        if kind == "margin":
            if p_draw is not None:
                raise ValueError("p_draw applies to the Poisson model only")
            return MarginModel.from_prior(
                spec, p0_home=p0_home, spread=spread, total=total,
                sigma=sigma, sigma_total=sigma_total,
            )  # fmt: skip
        if spread is not None:
            raise ValueError("the Poisson model takes p0_home, not a spread")
        if sigma is not None or sigma_total is not None:
            raise ValueError("sigma and sigma_total apply to the margin model only")
        if p0_home is None:
            raise ValueError("the Poisson model needs p0_home")
        return PoissonModel.from_prior(spec, p0_home, total=total, p_draw=p_draw)

    @abstractmethod
    def probs(self, lead: float, tau: float) -> tuple[float, float, float]:
        """(home, draw, away) of the result the moneyline settles on; they sum to 1."""

    @abstractmethod
    def p_home_win(self, lead: float, tau: float) -> float:
        """Probability that the home side wins (soccer: in regulation; others: overtime
        included)."""

    def p_away_win(self, lead: float, tau: float) -> float:
        """Probability that the away side wins (same settlement as :meth:`p_home_win`)."""
        return self.probs(lead, tau)[2]

    def p_draw(self, lead: float, tau: float) -> float:
        """Probability of a draw (soccer's regulation draw; 0 where ties go to overtime)."""
        return self.probs(lead, tau)[1]

    @abstractmethod
    def p_cover(self, lead: float, tau: float, line: float) -> float:
        """Probability that the home side covers ``line`` (final margin + line > 0; a push
        counts half)."""

    @abstractmethod
    def p_over(
        self, total_so_far: float, tau: float, line: float, lead: float | None = None
    ) -> float:
        """Probability that the final total exceeds ``line`` (a push counts half). ``lead``
        (home minus away now) is needed where ties go to a goal-adding overtime (hockey)."""

    def time_remaining(
        self,
        period: str,
        elapsed_s: int | None,
        elapsed_scope: str,
        *,
        overtime_s: int | None = None,
    ) -> float | None:
        """:func:`time_remaining` for this model's league."""
        return time_remaining(
            self.spec.sport, self.spec.league, period, elapsed_s, elapsed_scope,
            overtime_s=overtime_s,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class MarginModel(GameModel):
    """Stern's Brownian-motion margin model (see the module docstring).

    ``mu``: drift of the home lead, points per regulation game. ``sigma``: volatility, points
    per square-root regulation game. ``total_rate``: expected full-game total. ``sigma_total``:
    volatility of the total.
    """

    spec: LeagueSpec
    mu: float
    sigma: float
    total_rate: float
    sigma_total: float

    def __post_init__(self) -> None:
        for name in ("mu", "sigma", "total_rate", "sigma_total"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if self.sigma <= 0.0 or self.sigma_total <= 0.0:
            raise ValueError("sigma and sigma_total must be > 0")

    @classmethod
    def from_prior(
        cls,
        spec: LeagueSpec,
        *,
        p0_home: float | None = None,
        spread: float | None = None,
        total: float | None = None,
        sigma: float | None = None,
        sigma_total: float | None = None,
    ) -> MarginModel:
        """Solve ``mu`` from ``p0_home`` (``mu = sigma * Phi^-1(p0)``) or a home ``spread``
        (``mu = -spread``); exactly one of them. See :meth:`GameModel.for_sport`."""
        sig = spec.sigma_margin if sigma is None else sigma
        sig_t = spec.sigma_total if sigma_total is None else sigma_total
        if (p0_home is None) == (spread is None):
            raise ValueError("give exactly one of p0_home and spread")
        if p0_home is not None:
            _check_prob("p0_home", p0_home)
            mu = sig * norm_ppf(p0_home)
        else:
            assert spread is not None
            if not math.isfinite(spread):
                raise ValueError(f"spread must be finite, got {spread!r}")
            mu = -spread
        rate = spec.mean_total if total is None else total
        return cls(spec=spec, mu=mu, sigma=sig, total_rate=rate, sigma_total=sig_t)

    def p_home_win(self, lead: float, tau: float) -> float:
        _check_tau(tau)
        if tau == 0.0:
            return _step(lead)
        return norm_cdf((lead + self.mu * tau) / (self.sigma * math.sqrt(tau)))

    def probs(self, lead: float, tau: float) -> tuple[float, float, float]:
        p = self.p_home_win(lead, tau)
        return p, 0.0, 1.0 - p

    def p_away_win(self, lead: float, tau: float) -> float:
        return 1.0 - self.p_home_win(lead, tau)

    def p_draw(self, lead: float, tau: float) -> float:
        _check_tau(tau)
        return 0.0

    def p_cover(self, lead: float, tau: float, line: float) -> float:
        _check_tau(tau)
        _check_line(line)
        if tau == 0.0:
            return _step(lead + line)
        return norm_cdf((lead + line + self.mu * tau) / (self.sigma * math.sqrt(tau)))

    def p_over(
        self, total_so_far: float, tau: float, line: float, lead: float | None = None
    ) -> float:
        _check_tau(tau)
        _check_line(line)
        if tau == 0.0:
            return _step(total_so_far - line)
        expected = total_so_far + self.total_rate * tau
        return norm_cdf((expected - line) / (self.sigma_total * math.sqrt(tau)))


@dataclass(frozen=True, slots=True)
class PoissonModel(GameModel):
    """Independent-Poisson goals model (see the module docstring).

    ``rate_home`` / ``rate_away``: expected goals of each side over a full regulation game.
    ``overtime``: True where a regulation tie goes to overtime (hockey), False where it is a
    draw (soccer). ``ot_home``: the probability that home wins a tie after regulation (the
    home share of the scoring rate).
    """

    spec: LeagueSpec
    rate_home: float
    rate_away: float
    overtime: bool

    def __post_init__(self) -> None:
        if not (self.rate_home >= 0.0 and self.rate_away >= 0.0) or not (
            math.isfinite(self.rate_home) and math.isfinite(self.rate_away)
        ):
            raise ValueError("goal rates must be finite and >= 0")
        if self.rate_home + self.rate_away <= 0.0:
            raise ValueError("the total goal rate must be > 0")

    @property
    def ot_home(self) -> float:
        """Probability that home wins a game tied after regulation (overtime leagues)."""
        return self.rate_home / (self.rate_home + self.rate_away)

    @classmethod
    def from_prior(
        cls,
        spec: LeagueSpec,
        p0_home: float,
        *,
        total: float | None = None,
        p_draw: float | None = None,
    ) -> PoissonModel:
        """Solve the goal rates from the pregame prior (see :meth:`GameModel.for_sport`).

        With ``p_draw``: the expected total ``G`` is solved (between 0.05 and 25 goals) so that
        the regulation draw probability is ``p_draw``, with the home share solved for ``p0``
        at every trial ``G``. Raises :class:`ValueError` if no rates reproduce the prior (for
        soccer ``p0_home`` must be below ``1 - exp(-G)``, the chance of any goal at all).
        """
        _check_prob("p0_home", p0_home)
        overtime = spec.sport == "hockey"
        if p_draw is None:
            g = spec.mean_total if total is None else total
            return cls._solve_share(spec, p0_home, g, overtime)
        if total is not None:
            raise ValueError("give total or p_draw, not both (p_draw determines the total)")
        _check_prob("p_draw", p_draw)

        def draw_excess(g: float) -> float:
            try:
                m = cls._solve_share(spec, p0_home, g, overtime)
            except ValueError:
                return 1.0  # p0 unreachable with so few goals: treat as "too many draws"
            return m.regulation_probs(0, 1.0)[1] - p_draw

        g = _solve_decreasing(draw_excess, 0.05, 25.0, "p_draw", p_draw)
        return cls._solve_share(spec, p0_home, g, overtime)

    @classmethod
    def _solve_share(cls, spec: LeagueSpec, p0: float, g: float, overtime: bool) -> PoissonModel:
        def home_excess(s: float) -> float:
            m = cls(spec=spec, rate_home=s * g, rate_away=(1.0 - s) * g, overtime=overtime)
            return m.p_home_win(0, 1.0) - p0

        s = _solve_increasing(home_excess, 0.0, 1.0, "p0_home", p0)
        return cls(spec=spec, rate_home=s * g, rate_away=(1.0 - s) * g, overtime=overtime)

    def regulation_probs(self, lead: float, tau: float) -> tuple[float, float, float]:
        """(home, draw, away) at the end of regulation."""
        _check_tau(tau)
        k = -_int_score(lead)
        gt, eq = _diff_gt_eq(self.rate_home * tau, self.rate_away * tau, k)
        away = 1.0 - gt - eq
        return gt, eq, away if away > 0.0 else 0.0

    def probs(self, lead: float, tau: float) -> tuple[float, float, float]:
        home, draw, away = self.regulation_probs(lead, tau)
        if not self.overtime:
            return home, draw, away
        s = self.ot_home
        return home + s * draw, 0.0, away + (1.0 - s) * draw

    def p_home_win(self, lead: float, tau: float) -> float:
        return self.probs(lead, tau)[0]

    def p_cover(self, lead: float, tau: float, line: float) -> float:
        _check_tau(tau)
        _check_line(line)
        if _is_quarter(line):
            return 0.5 * (
                self.p_cover(lead, tau, line - 0.25) + self.p_cover(lead, tau, line + 0.25)
            )
        score = _int_score(lead)
        lh, la = self.rate_home * tau, self.rate_away * tau
        # Goals to come D = X - Y; the home side covers when score + D + line > 0.
        t, push = _threshold(score + line)
        gt, eq = _diff_gt_eq(lh, la, t)
        value = gt + 0.5 * eq if push else gt
        if self.overtime:
            # A regulation tie (D = -score) ends +1 for the overtime/shootout winner instead.
            tie = _diff_gt_eq(lh, la, -score)[1]
            s = self.ot_home
            value += tie * (s * _step(line + 1.0) + (1.0 - s) * _step(line - 1.0) - _step(line))
        return min(max(value, 0.0), 1.0)

    def p_over(
        self, total_so_far: float, tau: float, line: float, lead: float | None = None
    ) -> float:
        """Probability that the final total exceeds ``line`` (a push counts half).

        Hockey needs ``lead`` (home minus away now): a game tied after regulation gets one more
        goal from overtime or the shootout, and the chance of a tie depends on the lead.
        """
        _check_tau(tau)
        _check_line(line)
        if self.overtime and lead is None:
            raise ValueError("hockey totals need the lead: a regulation tie adds a goal")
        if _is_quarter(line):
            return 0.5 * (
                self.p_over(total_so_far, tau, line - 0.25, lead)
                + self.p_over(total_so_far, tau, line + 0.25, lead)
            )
        so_far = _int_score(total_so_far)
        lam = (self.rate_home + self.rate_away) * tau
        # Goals to come N ~ Poisson(lam); over when so_far + N - line > 0.
        t, push = _threshold(so_far - line)
        gt, eq = _poisson_gt_eq(lam, t)
        value = gt + 0.5 * eq if push else gt
        if self.overtime:
            assert lead is not None
            value += self._overtime_goal_shift(so_far, _int_score(lead), tau, line)
        return min(max(value, 0.0), 1.0)

    def _overtime_goal_shift(self, so_far: int, lead: int, tau: float, line: float) -> float:
        """Change of the over value from the goal that overtime or the shootout adds to a tie.

        The regulation ties are ``Y = X + lead`` (``X``, ``Y`` the goals to come): total
        ``so_far + 2X + lead``, settled one goal higher. One pass over ``X``, no allocation.
        """
        lh, la = self.rate_home * tau, self.rate_away * tau
        x = max(0, -lead)
        y = x + lead
        px = _poisson_pmf(lh, x)
        py = _poisson_pmf(la, y)
        shift = 0.0
        while px > 0.0 and py > 0.0:
            t = so_far + x + y
            shift += px * py * (_step(t + 1 - line) - _step(t - line))
            x += 1
            y += 1
            px *= lh / x
            py *= la / y
            if x > lh and y > la and px * py < 1e-18:
                break
        return shift


def _check_line(line: float) -> None:
    if not math.isfinite(line):
        raise ValueError(f"line must be finite, got {line!r}")


def _int_score(value: float) -> int:
    iv = int(round(value))
    if abs(value - iv) > 1e-9:
        raise ValueError(f"goal counts must be whole numbers, got {value!r}")
    return iv


def _threshold(offset: float) -> tuple[int, bool]:
    """For an integer-valued ``Q``, the bet "Q + offset > 0" wins when ``Q > t`` and pushes when
    ``Q == t`` (only if ``push``): returns ``(t, push)``."""
    t = -offset
    ti = math.floor(t)
    return int(ti), t == ti


def _poisson_pmf(lam: float, n: int) -> float:
    """P(N = n) for N ~ Poisson(lam)."""
    if lam == 0.0:
        return 1.0 if n == 0 else 0.0
    return math.exp(n * math.log(lam) - lam - math.lgamma(n + 1))


def _poisson_gt_eq(lam: float, t: int) -> tuple[float, float]:
    """(P(N > t), P(N == t)) for N ~ Poisson(lam)."""
    if t < 0:
        return 1.0, 0.0
    p = math.exp(-lam)
    c = p
    for j in range(1, t + 1):
        p *= lam / j
        c += p
    gt = 1.0 - c
    return (gt if gt > 0.0 else 0.0), p


def _diff_gt_eq(lh: float, la: float, k: int) -> tuple[float, float]:
    """(P(X - Y > k), P(X - Y == k)) for independent X ~ Poisson(lh), Y ~ Poisson(la).

    One pass over ``y`` (O(la + k) steps, no allocation): ``sum_y P(Y=y) * P(X > y + k)`` and
    ``sum_y P(Y=y) * P(X = y + k)``, with the pmf and cdf of X at ``j = y + k`` carried along.
    """
    # X's pmf px and cdf cx at j (0 for j < 0).
    ex = math.exp(-lh)
    j = k
    if j < 0:
        px = cx = 0.0
    else:
        px = cx = ex
        for i in range(1, j + 1):
            px *= lh / i
            cx += px
    py = math.exp(-la)
    y = 0
    gt = eq = 0.0
    while True:
        gt += py * (1.0 - cx)
        eq += py * px
        y += 1
        py *= la / y
        if py == 0.0 or (y > 2.0 * la and py < 1e-17):
            break
        j += 1
        if j == 0:
            px = cx = ex
        elif j > 0:
            px *= lh / j
            cx += px
    return (gt if gt > 0.0 else 0.0), eq


# ------------------------------------------------------------------------------------------
# Root finding (model construction only)
# ------------------------------------------------------------------------------------------

_ROOT_XTOL = 1e-13
_ROOT_MAX_ITER = 200


def _solve_increasing(
    f: Callable[[float], float], lo: float, hi: float, name: str, target: float
) -> float:
    """The root of an increasing ``f`` on [lo, hi] (Illinois regula falsi)."""
    flo, fhi = f(lo), f(hi)
    if flo > 0.0 or fhi < 0.0:
        raise ValueError(f"{name} = {target!r} cannot be reproduced by the model (reachable: "
                         f"{flo + target:.6g} to {fhi + target:.6g})")
    return _illinois(f, lo, hi, flo, fhi)


def _solve_decreasing(
    f: Callable[[float], float], lo: float, hi: float, name: str, target: float
) -> float:
    """The root of a decreasing ``f`` on [lo, hi] (Illinois regula falsi)."""
    flo, fhi = f(lo), f(hi)
    if flo < 0.0 or fhi > 0.0:
        raise ValueError(f"{name} = {target!r} cannot be reproduced by the model (reachable: "
                         f"{fhi + target:.6g} to {flo + target:.6g})")
    return _illinois(f, lo, hi, flo, fhi)


def _illinois(
    f: Callable[[float], float], lo: float, hi: float, flo: float, fhi: float
) -> float:
    """A root of ``f`` in [lo, hi] given ``f(lo)`` and ``f(hi)`` of opposite signs (or zero)."""
    if flo == 0.0:
        return lo
    if fhi == 0.0:
        return hi
    side = 0
    x = lo
    for _ in range(_ROOT_MAX_ITER):
        x = (lo * fhi - hi * flo) / (fhi - flo)
        if not lo < x < hi:
            x = 0.5 * (lo + hi)
        fx = f(x)
        if fx == 0.0 or hi - lo <= _ROOT_XTOL:
            return x
        if (fx > 0.0) == (fhi > 0.0):
            hi, fhi = x, fx
            if side == -1:
                flo *= 0.5
            side = -1
        else:
            lo, flo = x, fx
            if side == 1:
                fhi *= 0.5
            side = 1
        if hi - lo <= _ROOT_XTOL:
            return x
    return x


# ------------------------------------------------------------------------------------------
# One entry point for strategies
# ------------------------------------------------------------------------------------------


def fair_probability(
    model: GameModel,
    market_type: MarketType,
    outcome: str,
    home_score: int,
    away_score: int,
    tau: float,
    line: float | None = None,
) -> float:
    """The fair probability of one outcome of one market, from the live score and ``tau``.

    ``market_type`` is Gamma's ``sportsMarketType`` (``moneyline``, ``spreads``, ``totals``;
    the odds feed's ``h2h`` is read as ``moneyline``). ``outcome``:

    * moneyline: ``"home"``, ``"away"`` or ``"draw"`` (``line`` unused);
    * spreads: ``"home"`` or ``"away"``, with ``line`` the handicap of *that* side (away +3.5
      -> ``outcome="away", line=3.5``); a push counts half;
    * totals: ``"over"`` or ``"under"``, with ``line`` the total; a push counts half.

    Which Polymarket outcome is home or away is the caller's mapping (Gamma's team order says
    nothing about it). ``tau`` comes from :func:`time_remaining`; when that is None, do not
    call this. Raises :class:`ValueError` for an unknown market type or outcome, a missing
    line, or ``tau`` outside [0, 1].
    """
    lead = home_score - away_score
    kind = "moneyline" if market_type == "h2h" else market_type
    if kind == "moneyline":
        if outcome == "home":
            return model.p_home_win(lead, tau)
        if outcome == "away":
            return model.p_away_win(lead, tau)
        if outcome == "draw":
            return model.p_draw(lead, tau)
        raise ValueError(f"moneyline outcome must be 'home', 'away' or 'draw', got {outcome!r}")
    if line is None or not math.isfinite(line):
        raise ValueError(f"{kind} needs a finite line, got {line!r}")
    if kind == "spreads":
        if outcome == "home":
            return model.p_cover(lead, tau, line)
        if outcome == "away":
            # Away +L covers when -(M) + L > 0, i.e. when home -L does not: 1 - P(home covers -L)
            # (a push is half on both sides, so the complement stays exact).
            return 1.0 - model.p_cover(lead, tau, -line)
        raise ValueError(f"spreads outcome must be 'home' or 'away', got {outcome!r}")
    if kind == "totals":
        total = home_score + away_score
        if outcome == "over":
            return model.p_over(total, tau, line, lead)
        if outcome == "under":
            return 1.0 - model.p_over(total, tau, line, lead)
        raise ValueError(f"totals outcome must be 'over' or 'under', got {outcome!r}")
    raise ValueError(f"unknown market type {market_type!r}: use moneyline, spreads or totals")

