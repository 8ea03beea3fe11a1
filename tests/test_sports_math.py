"""polybot.sports: odds conversion, de-vig, consensus, live win-probability models, game time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.sports import (
    LEAGUES,
    SUPPORTED_SPORTS,
    Consensus,
    GameModel,
    MarginModel,
    PoissonModel,
    american_to_decimal,
    consensus,
    consensus_from_prices,
    decimal_to_american,
    devig,
    devig_multiplicative,
    devig_power,
    fair_probability,
    implied_probabilities,
    implied_probability,
    league_spec,
    norm_cdf,
    norm_ppf,
    overround,
    time_remaining,
)

TIGHT = 1e-12
PHI_1 = 0.8413447460685429  # Phi(1)
PHI_HALF = 0.6914624612740131  # Phi(0.5)

prices = st.floats(min_value=1.01, max_value=60.0, allow_nan=False, allow_infinity=False)
markets = st.lists(prices, min_size=2, max_size=3)
probs01 = st.floats(min_value=0.02, max_value=0.98)
taus = st.floats(min_value=0.0, max_value=1.0)
fast = settings(max_examples=60, deadline=None)


# ------------------------------------------------------------------------------------------
# Odds: conversions
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("american", "decimal"),
    [(-110, 1 + 100 / 110), (150, 2.5), (-200, 1.5), (100, 2.0), (-100, 2.0), (1000, 11.0)],
)
def test_american_to_decimal_known(american: float, decimal: float) -> None:
    assert american_to_decimal(american) == pytest.approx(decimal, abs=TIGHT)


@pytest.mark.parametrize(("decimal", "american"), [(2.5, 150.0), (1.5, -200.0), (2.0, 100.0)])
def test_decimal_to_american_known(decimal: float, american: float) -> None:
    assert decimal_to_american(decimal) == pytest.approx(american, abs=TIGHT)


@pytest.mark.parametrize("bad", [-50, 0, 99.9, math.nan, math.inf])
def test_american_invalid(bad: float) -> None:
    with pytest.raises(ValueError):
        american_to_decimal(bad)


@pytest.mark.parametrize("bad", [1.0, 0.5, -2.0, math.nan, math.inf])
def test_decimal_invalid(bad: float) -> None:
    with pytest.raises(ValueError):
        decimal_to_american(bad)
    with pytest.raises(ValueError):
        implied_probability(bad)


@given(st.one_of(st.floats(100.0, 50_000.0), st.floats(-50_000.0, -101.0)))
@fast
def test_american_round_trip(american: float) -> None:
    # (-100 and +100 are the same price, evens, written +100 on the way back; just below -100
    # the decimal rounds to 2.0 too, hence the gap.)
    assert decimal_to_american(american_to_decimal(american)) == pytest.approx(american, rel=1e-9)


@given(st.floats(1.001, 500.0))
@fast
def test_decimal_round_trip(decimal: float) -> None:
    assert american_to_decimal(decimal_to_american(decimal)) == pytest.approx(decimal, rel=1e-9)


def test_implied_and_overround() -> None:
    d = american_to_decimal(-110)
    assert implied_probability(2.5) == pytest.approx(0.4, abs=TIGHT)
    assert implied_probabilities([2.0, 4.0]) == pytest.approx((0.5, 0.25), abs=TIGHT)
    assert overround([d, d]) == pytest.approx(1 / 21, abs=TIGHT)  # 2 * 110/210 - 1
    assert overround([2.0, 2.0]) == pytest.approx(0.0, abs=TIGHT)
    assert overround([2.2, 2.2]) < 0.0  # an arbitrage


# ------------------------------------------------------------------------------------------
# Odds: de-vig
# ------------------------------------------------------------------------------------------


def test_devig_minus_110_both_ways() -> None:
    d = american_to_decimal(-110)
    for method in ("multiplicative", "power"):
        assert devig([d, d], method) == pytest.approx((0.5, 0.5), abs=TIGHT)


def test_multiplicative_by_hand() -> None:
    # (1/1.8) / (1/1.8 + 1/2.1) = 2.1 / 3.9 = 7/13
    assert devig_multiplicative([1.8, 2.1]) == pytest.approx((7 / 13, 6 / 13), abs=TIGHT)


def test_power_exact_exponent() -> None:
    # q = (0.6, 0.8): 0.6**2 + 0.8**2 = 1, so k = 2 and p = (0.36, 0.64)
    assert devig_power([1 / 0.6, 1 / 0.8]) == pytest.approx((0.36, 0.64), abs=TIGHT)
    # q = (2/3, 2/3, 1/3): squares sum to 1
    assert devig_power([1.5, 1.5, 3.0]) == pytest.approx((4 / 9, 4 / 9, 1 / 9), abs=TIGHT)
    # prices summing below 1: k < 1; q = (0.25, 0.25) -> k = 1/2
    assert devig_power([4.0, 4.0]) == pytest.approx((0.5, 0.5), abs=TIGHT)


def test_power_takes_margin_off_the_longshot() -> None:
    decimals = [1.2, 6.0, 15.0]
    mult, power = devig_multiplicative(decimals), devig_power(decimals)
    assert power[2] < mult[2] and power[0] > mult[0]


@pytest.mark.parametrize(
    "bad",
    [[2.0], [], [1.0, 2.0], [0.9, 3.0], [math.nan, 2.0], [2.0, math.inf], [2.0, -3.0]],
)
def test_devig_invalid(bad: list[float]) -> None:
    for method in ("multiplicative", "power"):
        with pytest.raises(ValueError):
            devig(bad, method)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        overround(bad)


def test_devig_unknown_method() -> None:
    with pytest.raises(ValueError, match="power"):
        devig([2.0, 2.0], "shin")  # type: ignore[arg-type]


@given(markets)
@fast
def test_devig_properties(decimals: list[float]) -> None:
    qs = [1 / d for d in decimals]
    mult, power = devig_multiplicative(decimals), devig_power(decimals)
    for ps in (mult, power):
        assert math.fsum(ps) == pytest.approx(1.0, abs=TIGHT)
        assert all(0.0 < p < 1.0 for p in ps)
        for i in range(len(qs)):  # the order of the implied probabilities is kept
            for j in range(len(qs)):
                if qs[i] > qs[j]:
                    assert ps[i] >= ps[j]
                elif qs[i] == qs[j]:
                    assert ps[i] == pytest.approx(ps[j], abs=TIGHT)
    # power: one common exponent k with p_i = q_i ** k
    ks = [math.log(p) / math.log(q) for p, q in zip(power, qs)]
    assert max(ks) - min(ks) == pytest.approx(0.0, abs=1e-9)
    # with a margin, power leaves less on the longshot and more on the favourite
    if math.fsum(qs) > 1.0:
        lo, hi = qs.index(min(qs)), qs.index(max(qs))
        assert power[lo] <= mult[lo] + 1e-12
        assert power[hi] >= mult[hi] - 1e-12


@given(prices, st.integers(2, 3))
@fast
def test_power_equals_multiplicative_for_equal_prices(price: float, n: int) -> None:
    decimals = [price] * n
    assert devig_power(decimals) == pytest.approx(devig_multiplicative(decimals), abs=TIGHT)
    assert devig_power(decimals) == pytest.approx((1 / n,) * n, abs=TIGHT)


# ------------------------------------------------------------------------------------------
# Odds: consensus
# ------------------------------------------------------------------------------------------


def test_consensus_by_hand() -> None:
    c = consensus({"a": (0.6, 0.4), "b": (0.5, 0.5)})
    assert isinstance(c, Consensus)
    assert c.probs == pytest.approx((0.55, 0.45), abs=TIGHT)
    assert c.books == 2
    assert c.dispersion == pytest.approx(0.05, abs=TIGHT)  # population sd of {0.6, 0.5}
    sharp = consensus({"a": (0.6, 0.4), "b": (0.5, 0.5)}, sharp=["a"], sharp_weight=3.0)
    assert sharp.probs == pytest.approx((0.575, 0.425), abs=TIGHT)
    weighted = consensus(
        {"a": (0.6, 0.4), "b": (0.5, 0.5), "c": (0.2, 0.8)}, weights={"a": 1.0, "b": 3.0, "c": 0}
    )
    assert weighted.probs == pytest.approx((0.525, 0.475), abs=TIGHT)
    assert weighted.books == 2  # a zero weight leaves the book out


def test_consensus_one_book_and_three_way() -> None:
    c = consensus({"pinnacle": (0.5, 0.3, 0.2)})
    assert c.probs == pytest.approx((0.5, 0.3, 0.2), abs=TIGHT)
    assert (c.books, c.dispersion) == (1, 0.0)


@pytest.mark.parametrize(
    ("books", "kwargs"),
    [
        ({}, {}),
        ({"a": (0.5, 0.5), "b": (0.2, 0.3, 0.5)}, {}),
        ({"a": (1.0,)}, {}),
        ({"a": (0.55, 0.5)}, {}),  # raw implied probabilities, not de-vigged
        ({"a": (math.nan, 0.5)}, {}),
        ({"a": (0.5, 0.5)}, {"weights": {"a": -1.0}}),
        ({"a": (0.5, 0.5)}, {"weights": {"a": 0.0}}),
        ({"a": (0.5, 0.5)}, {"sharp": ["a"], "sharp_weight": math.nan}),
    ],
)
def test_consensus_invalid(books: dict[str, tuple[float, ...]], kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        consensus(books, **kwargs)  # type: ignore[arg-type]


@given(st.lists(probs01, min_size=1, max_size=2), st.integers(1, 6))
@fast
def test_consensus_of_identical_books(head: list[float], n_books: int) -> None:
    rest = 1.0 - math.fsum(head) if math.fsum(head) < 1.0 else None
    probs = tuple(head + [rest]) if rest is not None and rest > 0 else (head[0], 1.0 - head[0])
    c = consensus({f"book{i}": probs for i in range(n_books)}, sharp=["book0"], sharp_weight=4.0)
    assert c.probs == pytest.approx(probs, abs=TIGHT)
    assert c.dispersion == pytest.approx(0.0, abs=TIGHT)
    assert c.books == n_books
    assert math.fsum(c.probs) == pytest.approx(1.0, abs=TIGHT)


def test_consensus_from_prices() -> None:
    d = american_to_decimal(-110)
    by_map = consensus_from_prices({"a": (d, d), "b": (1.8, 2.1)})
    by_pairs = consensus_from_prices([("a", (d, d)), ("b", (1.8, 2.1))])
    expected = ((0.5 + 7 / 13) / 2, (0.5 + 6 / 13) / 2)
    assert by_map.probs == pytest.approx(expected, abs=TIGHT)
    assert by_pairs == by_map
    power = consensus_from_prices({"a": (1 / 0.6, 1 / 0.8)}, method="power")
    assert power.probs == pytest.approx((0.36, 0.64), abs=TIGHT)
    with pytest.raises(ValueError, match="twice"):
        consensus_from_prices([("a", (2.0, 2.0)), ("a", (2.0, 2.0))])
    with pytest.raises(ValueError, match="'bad'"):
        consensus_from_prices({"bad": (1.0, 2.0)})


# ------------------------------------------------------------------------------------------
# Normal distribution
# ------------------------------------------------------------------------------------------


def test_normal_helpers() -> None:
    assert norm_cdf(1.0) == pytest.approx(PHI_1, abs=1e-15)
    assert norm_cdf(0.0) == 0.5
    assert norm_ppf(0.975) == pytest.approx(1.959963984540054, abs=1e-12)
    assert norm_ppf(PHI_1) == pytest.approx(1.0, abs=1e-12)
    for bad in (0.0, 1.0, math.nan):
        with pytest.raises(ValueError):
            norm_ppf(bad)


# ------------------------------------------------------------------------------------------
# Margin model
# ------------------------------------------------------------------------------------------


def test_nba_tip_off_returns_prior() -> None:
    m = GameModel.for_sport("basketball", "nba", 0.65)
    assert isinstance(m, MarginModel)
    assert m.sigma == 12.0
    assert m.p_home_win(0, 1.0) == pytest.approx(0.65, abs=TIGHT)
    assert m.probs(0, 1.0) == pytest.approx((0.65, 0.0, 0.35), abs=TIGHT)


def test_margin_phi_one() -> None:
    m = GameModel.for_sport("basketball", "nba", 0.5)  # mu = 0
    sigma = m.spec.sigma_margin
    for tau in (1.0, 0.25, 0.01):
        lead = sigma * math.sqrt(tau)
        assert m.p_home_win(lead, tau) == pytest.approx(PHI_1, abs=TIGHT)
        assert m.p_away_win(-lead, tau) == pytest.approx(PHI_1, abs=TIGHT)
    # drift: p0 = Phi(1) gives mu = sigma; tied with a quarter left: Phi(mu*0.25/(sigma*0.5))
    d = GameModel.for_sport("basketball", "nba", PHI_1)
    assert isinstance(d, MarginModel)
    assert d.mu == pytest.approx(sigma, abs=1e-9)
    assert d.p_home_win(0, 0.25) == pytest.approx(PHI_HALF, abs=1e-12)


def test_margin_spread_prior_and_cover() -> None:
    m = GameModel.for_sport("basketball", "nba", spread=-12.0)  # home favoured by 12 = sigma
    assert m.p_home_win(0, 1.0) == pytest.approx(PHI_1, abs=TIGHT)
    assert m.p_cover(0, 1.0, -12.0) == pytest.approx(0.5, abs=TIGHT)  # the line is the median
    even = GameModel.for_sport("football", "nfl", 0.5)
    assert even.p_cover(0, 1.0, 13.86) == pytest.approx(PHI_1, abs=TIGHT)
    assert even.p_cover(3, 0.0, -2.5) == 1.0
    assert even.p_cover(3, 0.0, -3.0) == 0.5  # push
    assert even.p_cover(3, 0.0, -3.5) == 0.0


def test_margin_totals() -> None:
    m = GameModel.for_sport("basketball", "nba", 0.5)  # mean total 228, sd 18
    assert m.p_over(0, 1.0, 228.0) == pytest.approx(0.5, abs=TIGHT)
    assert m.p_over(0, 1.0, 210.0) == pytest.approx(PHI_1, abs=TIGHT)
    assert m.p_over(100, 0.5, 214.0) == pytest.approx(0.5, abs=TIGHT)  # 100 + 114 to come
    t = GameModel.for_sport("basketball", "nba", 0.5, total=200.0)
    assert t.p_over(0, 1.0, 200.0) == pytest.approx(0.5, abs=TIGHT)
    assert (m.p_over(201, 0.0, 200.5), m.p_over(200, 0.0, 200.0), m.p_over(199, 0.0, 200)) == (
        1.0,
        0.5,
        0.0,
    )


def test_margin_end_of_regulation() -> None:
    m = GameModel.for_sport("basketball", "nba", 0.9)
    assert (m.p_home_win(1, 0.0), m.p_home_win(-1, 0.0), m.p_home_win(0, 0.0)) == (1.0, 0.0, 0.5)
    assert m.p_draw(0, 0.0) == 0.0


@pytest.mark.parametrize("sport,league", [("basketball", "nba"), ("basketball", "cbb"),
                                          ("football", "nfl"), ("football", "cfb"),
                                          ("basketball", "wnba"), ("hockey", "nhl"),
                                          ("soccer", "epl")])  # fmt: skip
def test_win_probability_properties_per_league(sport: str, league: str) -> None:
    check_properties(sport, league)


@given(
    sport_league=st.sampled_from(
        [("basketball", "nba"), ("football", "nfl"), ("hockey", "nhl"), ("soccer", "mls")]
    ),
    p0=probs01,
    lead=st.integers(-20, 20),
    tau=taus,
)
@settings(max_examples=150, deadline=None)
def test_win_probability_monotone(
    sport_league: tuple[str, str], p0: float, lead: int, tau: float
) -> None:
    sport, league = sport_league
    if sport in ("soccer", "hockey"):
        lead = max(-6, min(6, lead))
    lo_p, hi_p = p0 * 0.9, min(0.9, p0 * 1.1 + 0.01)
    if sport == "soccer":
        lo_p, hi_p = min(lo_p, 0.85), min(hi_p, 0.9)
    lo = GameModel.for_sport(sport, league, lo_p)
    hi = GameModel.for_sport(sport, league, hi_p)
    p = lo.p_home_win(lead, tau)
    assert 0.0 <= p <= 1.0
    assert lo.p_home_win(lead + 1, tau) >= p - 1e-12  # monotone in the lead
    assert hi.p_home_win(lead, tau) >= p - 1e-12  # and in the prior
    home, draw, away = lo.probs(lead, tau)
    assert home + draw + away == pytest.approx(1.0, abs=1e-12)
    assert min(home, draw, away) >= 0.0


def check_properties(sport: str, league: str) -> None:
    m = GameModel.for_sport(sport, league, 0.62)
    assert m.p_home_win(0, 1.0) == pytest.approx(0.62, abs=1e-9)
    for lead in (1, 2, 5):
        assert m.p_home_win(lead, 1e-6) == pytest.approx(1.0, abs=1e-4)
        assert m.p_home_win(-lead, 1e-6) == pytest.approx(0.0, abs=1e-4)
        assert m.p_home_win(lead, 0.0) == 1.0 and m.p_home_win(-lead, 0.0) == 0.0
    # Between evenly matched sides a one-point lead is worth more as the clock runs down (with
    # a drift it need not be: a favourite leading by one gains from time left).
    spec = league_spec(sport, league)
    even: GameModel
    if spec.sport == "soccer":
        even = PoissonModel(spec=spec, rate_home=1.3, rate_away=1.3, overtime=False)
    else:
        even = GameModel.for_sport(sport, league, 0.5)
    last = 0.0
    for i in range(101):
        p = even.p_home_win(1, 1.0 - i / 100)
        assert p >= last - 1e-12
        last = p
    assert last == 1.0


# ------------------------------------------------------------------------------------------
# Poisson model
# ------------------------------------------------------------------------------------------


def test_poisson_prior_reproduced() -> None:
    s = GameModel.for_sport("soccer", "epl", 0.45)
    assert isinstance(s, PoissonModel)
    assert s.rate_home + s.rate_away == pytest.approx(2.6, abs=TIGHT)
    assert s.p_home_win(0, 1.0) == pytest.approx(0.45, abs=1e-10)
    assert s.rate_home > s.rate_away
    both = GameModel.for_sport("soccer", "epl", 0.45, p_draw=0.27)
    home, draw, away = both.probs(0, 1.0)
    assert (home, draw) == pytest.approx((0.45, 0.27), abs=1e-9)
    assert away == pytest.approx(0.28, abs=1e-9)
    h = GameModel.for_sport("hockey", "nhl", 0.6)
    assert h.p_home_win(0, 1.0) == pytest.approx(0.6, abs=1e-10)
    assert h.p_draw(0, 1.0) == 0.0


def test_poisson_end_states() -> None:
    s = GameModel.for_sport("soccer", "epl", 0.45)
    assert s.probs(1, 0.0) == (1.0, 0.0, 0.0)
    assert s.probs(0, 0.0) == (0.0, 1.0, 0.0)
    assert s.probs(-2, 0.0) == (0.0, 0.0, 1.0)
    h = GameModel.for_sport("hockey", "nhl", 0.6)
    assert isinstance(h, PoissonModel)
    assert h.probs(0, 0.0) == pytest.approx((h.ot_home, 0.0, 1.0 - h.ot_home), abs=TIGHT)
    assert h.regulation_probs(0, 0.0) == (0.0, 1.0, 0.0)


def test_poisson_by_hand() -> None:
    spec = league_spec("soccer", "epl")
    one_sided = PoissonModel(spec=spec, rate_home=1.0, rate_away=0.0, overtime=False)
    e1 = math.exp(-1.0)
    assert one_sided.probs(0, 1.0) == pytest.approx((1 - e1, e1, 0.0), abs=TIGHT)
    two = PoissonModel(spec=spec, rate_home=2.0, rate_away=0.0, overtime=False)
    e2 = math.exp(-2.0)
    # one goal down: home needs two (P(X >= 2)), one draws (P(X = 1))
    assert two.probs(-1, 1.0) == pytest.approx((1 - 3 * e2, 2 * e2, e2), abs=TIGHT)
    # half the game left: rates halve
    assert two.probs(0, 0.5) == pytest.approx((1 - e1, e1, 0.0), abs=TIGHT)


def test_poisson_totals_and_lines() -> None:
    s = GameModel.for_sport("soccer", "epl", 0.45)  # G = 2.6: 1.3 goals in half a game
    lam = 1.3
    e = math.exp(-lam)
    over_25 = 1 - e  # two goals in, 2.5: one more is enough
    over_3 = (1 - e * (1 + lam)) + 0.5 * lam * e  # whole line: exactly one more pushes
    assert s.p_over(2, 0.5, 2.5) == pytest.approx(over_25, abs=TIGHT)
    assert s.p_over(2, 0.5, 3.0) == pytest.approx(over_3, abs=TIGHT)
    assert s.p_over(2, 0.5, 2.75) == pytest.approx((over_25 + over_3) / 2, abs=TIGHT)
    assert s.p_over(3, 0.0, 2.5) == 1.0 and s.p_over(2, 0.0, 2.5) == 0.0
    assert s.p_over(3, 0.0, 3.0) == 0.5
    # handicaps: home -0.5 is a home win; home 0 (draw no bet) splits the draw
    home, draw, _ = s.probs(0, 1.0)
    assert s.p_cover(0, 1.0, -0.5) == pytest.approx(home, abs=TIGHT)
    assert s.p_cover(0, 1.0, 0.0) == pytest.approx(home + draw / 2, abs=TIGHT)
    assert s.p_cover(0, 1.0, -0.25) == pytest.approx(home + draw / 4, abs=TIGHT)
    assert s.p_cover(0, 1.0, 0.5) == pytest.approx(home + draw, abs=TIGHT)


def test_hockey_overtime_goal() -> None:
    h = GameModel.for_sport("hockey", "nhl", 0.6)
    assert isinstance(h, PoissonModel)
    s = h.ot_home
    # tied at the end of regulation: overtime decides, the winner by one, one more goal
    assert h.p_cover(0, 0.0, -1.5) == 0.0
    assert h.p_cover(0, 0.0, 1.5) == 1.0
    assert h.p_cover(0, 0.0, -0.5) == pytest.approx(s, abs=TIGHT)
    assert h.p_over(4, 0.0, 4.5, lead=0) == 1.0  # 2-2 becomes 3-2
    assert h.p_over(4, 0.0, 5.5, lead=0) == 0.0
    assert h.p_over(5, 0.0, 4.5, lead=1) == 1.0
    with pytest.raises(ValueError, match="lead"):
        h.p_over(4, 0.5, 5.5)


@pytest.mark.parametrize(
    ("p0", "kwargs"),
    [(0.97, {}), (0.5, {"spread": -1.5}), (0.5, {"sigma": 1.0}), (0.5, {"total": 2.5, "p_draw": 0.3}),
     (0.0, {}), (1.0, {}), (math.nan, {})],
)  # fmt: skip
def test_poisson_bad_priors(p0: float, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GameModel.for_sport("soccer", "epl", p0, **kwargs)  # type: ignore[arg-type]


def test_model_errors() -> None:
    with pytest.raises(ValueError, match="basketball, football, hockey, soccer"):
        GameModel.for_sport("curling", "", 0.5)
    with pytest.raises(ValueError, match="exactly one"):
        GameModel.for_sport("basketball", "nba", 0.5, spread=-3.0)
    with pytest.raises(ValueError, match="exactly one"):
        GameModel.for_sport("basketball", "nba")
    with pytest.raises(ValueError, match="Poisson"):
        GameModel.for_sport("basketball", "nba", 0.5, p_draw=0.2)
    with pytest.raises(ValueError):
        GameModel.for_sport("soccer", "epl", 0.5, model="margin")
    m = GameModel.for_sport("basketball", "nba", 0.5)
    for bad in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError, match="tau"):
            m.p_home_win(0, bad)
    with pytest.raises(ValueError):
        GameModel.for_sport("soccer", "epl", 0.5).p_home_win(0.5, 0.5)  # half a goal


def test_hockey_margin_option() -> None:
    h = GameModel.for_sport("hockey", "nhl", 0.6, model="margin")
    assert isinstance(h, MarginModel)
    assert h.sigma == pytest.approx(math.sqrt(6.0), abs=0.01)
    assert h.p_home_win(0, 1.0) == pytest.approx(0.6, abs=TIGHT)


def test_league_lookup() -> None:
    assert league_spec("basketball", "NBA").regulation_s == 48 * 60
    assert league_spec("basketball", "cbb") is LEAGUES["ncaab"]
    assert league_spec("basketball", "basketball_nba") is LEAGUES["nba"]
    assert league_spec("basketball", "euroleague") is LEAGUES["basketball"]
    assert league_spec("basketball", "nfl") is LEAGUES["basketball"]  # another sport's league
    assert league_spec("americanfootball", "nfl") is LEAGUES["nfl"]
    assert league_spec("soccer", "epl").regulation_s == 90 * 60
    assert set(SUPPORTED_SPORTS) == {spec.sport for spec in LEAGUES.values()}


# ------------------------------------------------------------------------------------------
# fair_probability
# ------------------------------------------------------------------------------------------


@given(
    p0=st.floats(0.1, 0.8),
    home=st.integers(0, 5),
    away=st.integers(0, 5),
    tau=taus,
    line=st.sampled_from([-2.5, -1.5, -1.0, -0.75, -0.5, 0.0, 0.25, 0.5, 1.5, 2.0]),
    sport=st.sampled_from(["soccer", "hockey", "basketball"]),
)
@settings(max_examples=120, deadline=None)
def test_fair_probability_complements(
    p0: float, home: int, away: int, tau: float, line: float, sport: str
) -> None:
    m = GameModel.for_sport(sport, "", p0)
    h = fair_probability(m, "spreads", "home", home, away, tau, line)
    a = fair_probability(m, "spreads", "away", home, away, tau, -line)
    assert 0.0 <= h <= 1.0 and h + a == pytest.approx(1.0, abs=1e-12)
    total_line = home + away + line + 3.0
    over = fair_probability(m, "totals", "over", home, away, tau, total_line)
    under = fair_probability(m, "totals", "under", home, away, tau, total_line)
    assert 0.0 <= over <= 1.0 and over + under == pytest.approx(1.0, abs=1e-12)
    ml = [fair_probability(m, "moneyline", o, home, away, tau) for o in ("home", "draw", "away")]
    assert math.fsum(ml) == pytest.approx(1.0, abs=1e-12)
    assert fair_probability(m, "h2h", "home", home, away, tau) == ml[0]


def test_fair_probability_errors() -> None:
    m = GameModel.for_sport("basketball", "nba", 0.5)
    with pytest.raises(ValueError, match="line"):
        fair_probability(m, "spreads", "home", 0, 0, 0.5)
    with pytest.raises(ValueError, match="market type"):
        fair_probability(m, "props", "home", 0, 0, 0.5, 1.5)  # type: ignore[arg-type]
    for market, outcome in (("moneyline", "over"), ("spreads", "draw"), ("totals", "home")):
        with pytest.raises(ValueError, match="outcome"):
            fair_probability(m, market, outcome, 0, 0, 0.5, 1.5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Game time
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sport", "league", "period", "elapsed", "scope", "tau"),
    [
        ("basketball", "nba", "Q1", 0, "period", 1.0),
        ("basketball", "nba", "1Q", 360, "period", 1 - 6 / 48),
        ("basketball", "nba", "Q4", 720, "period", 0.0),
        ("basketball", "nba", "Q4", 800, "period", 0.0),  # clock past the period: clamped
        ("basketball", "nba", "HT", None, "", 0.5),
        ("basketball", "nba", "OT", 0, "period", 5 / 48),
        ("basketball", "nba", "2OT", 150, "period", 2.5 / 48),
        ("basketball", "nba", "OT", 48 * 60 + 60, "match", 4 / 48),
        ("basketball", "wnba", "Q3", 300, "period", 15 / 40),
        ("basketball", "cbb", "2H", 600, "period", 10 / 40),
        ("basketball", "cbb", "Q3", 600, "period", None),  # quarters in a two-half league
        ("basketball", "nba", "Q5", 0, "period", None),
        ("basketball", "nba", "Q2", None, "", None),  # no clock in a running period
        ("basketball", "nba", "Q2", -5, "period", None),
        ("basketball", "nba", "Q2", 5, "quarter", None),  # unknown scope
        ("football", "nfl", "Q4", 318, "period", (900 - 318) / 3600),
        ("football", "nfl", "OT", 300, "period", 300 / 3600),
        ("football", "nfl", "OT", 300, "period", 300 / 3600),
        ("football", "cfb", "OT", 0, "period", None),  # untimed college overtime
        ("football", "nfl", "FT OT", None, "", 0.0),
        ("hockey", "nhl", "P2", 600, "period", 30 / 60),
        ("hockey", "nhl", "2P", 600, "period", 30 / 60),
        ("hockey", "nhl", "3rd", 1200, "period", 0.0),
        ("hockey", "nhl", "OT", 60, "period", 4 / 60),
        ("hockey", "nhl", "SO", None, "", 0.0),
        ("hockey", "nhl", "HT", None, "", None),
        ("soccer", "epl", "1H", 0, "match", 1.0),
        ("soccer", "epl", "1H", 47 * 60, "match", 0.5),  # first-half stoppage time
        ("soccer", "epl", "HT", None, "", 0.5),
        ("soccer", "kor", "2H", 74 * 60, "match", 16 / 90),
        ("soccer", "epl", "2H", 93 * 60, "match", 0.0),  # 90+3
        ("soccer", "epl", "2H", 67 * 60 + 12, "period", (90 * 60 - 67 * 60 - 12) / 5400),
        ("soccer", "epl", "2H", 10 * 60, "period", 35 / 90),  # an in-period clock
        ("soccer", "epl", "1H", 32 * 60 + 15, "", (90 * 60 - 32 * 60 - 15) / 5400),
        ("soccer", "epl", "ET1", 95 * 60, "match", 0.0),
        ("soccer", "epl", "OT", None, "", 0.0),
        ("soccer", "epl", "PEN", None, "", 0.0),
        ("soccer", "epl", "FT", None, "", 0.0),
        ("soccer", "epl", "NS", None, "", 1.0),
        ("soccer", "epl", "Live", 600, "match", None),
        ("soccer", "epl", "", 600, "match", None),
        ("tennis", "wta", "S2", None, "", None),
        ("esports", "cs2", "2/3", None, "", None),
    ],
)
def test_time_remaining_known(
    sport: str, league: str, period: str, elapsed: int | None, scope: str, tau: float | None
) -> None:
    got = time_remaining(sport, league, period, elapsed, scope)
    if tau is None:
        assert got is None
    else:
        assert got == pytest.approx(tau, abs=TIGHT)


def test_time_remaining_overtime_override_and_model_helper() -> None:
    assert time_remaining("hockey", "nhl", "OT", 0, "period", overtime_s=1200) == pytest.approx(
        20 / 60, abs=TIGHT
    )
    m = GameModel.for_sport("basketball", "nba", 0.5)
    assert m.time_remaining("Q3", 0, "period") == pytest.approx(0.5, abs=TIGHT)


_CLOCKS = {
    ("basketball", "nba"): ["Q1", "Q2", "HT", "Q3", "Q4"],
    ("basketball", "cbb"): ["1H", "HT", "2H"],
    ("football", "nfl"): ["1Q", "2Q", "HT", "3Q", "4Q"],
    ("hockey", "nhl"): ["P1", "P2", "P3"],
    ("soccer", "epl"): ["1H", "HT", "2H"],
}


@pytest.mark.parametrize(("sport", "league"), list(_CLOCKS))
def test_time_remaining_monotone(sport: str, league: str) -> None:
    spec = league_spec(sport, league)
    last = 1.0
    match_clock = 0
    for period in _CLOCKS[(sport, league)]:
        for e in range(0, spec.period_s + 180, 30):  # the clock runs, past the period's end too
            if period == "HT":
                elapsed, scope = None, ""
            elif sport == "soccer":
                elapsed, scope = match_clock + e, "match"
            else:
                elapsed, scope = e, "period"
            tau = time_remaining(sport, league, period, elapsed, scope)
            assert tau is not None and 0.0 <= tau <= 1.0
            assert tau <= last + 1e-15, (period, e)
            last = tau
        if period != "HT":
            match_clock += spec.period_s
    assert last == 0.0
    if spec.ot_s is not None:  # overtime: time is added, then runs down again
        ot = [time_remaining(sport, league, "OT", e, "period") for e in range(0, spec.ot_s + 1, 30)]
        assert ot[0] == pytest.approx(spec.ot_s / spec.regulation_s, abs=TIGHT)
        assert all(b is not None and a is not None and b <= a for a, b in zip(ot, ot[1:]))
        assert ot[-1] == 0.0


@given(st.integers(0, 5400), st.integers(0, 5400))
@fast
def test_soccer_clock_monotone(a: int, b: int) -> None:
    early, late = sorted((a, b))
    period_of = lambda e: "1H" if e < 2700 else "2H"  # noqa: E731
    t_early = time_remaining("soccer", "epl", period_of(early), early, "match")
    t_late = time_remaining("soccer", "epl", period_of(late), late, "match")
    assert t_early is not None and t_late is not None
    assert t_late <= t_early
