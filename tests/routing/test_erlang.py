from __future__ import annotations

import math
from fractions import Fraction

import pytest

from routing.erlang import asa, erlang_b, erlang_c, occupancy, predict, service_level, staffing


def _erlang_c_by_definition(n: int, a: int) -> float:
    """The textbook sum-of-terms formula in exact arithmetic, as an independent check."""
    top = Fraction(a**n, math.factorial(n)) * Fraction(n, n - a)
    bottom = sum(Fraction(a**k, math.factorial(k)) for k in range(n)) + top
    return float(top / bottom)


# A = 10 erlangs (e.g. 100 calls per half hour at 3 minutes AHT, the worked example Call Centre
# Helper uses in "Erlang C formula - made simple"); the published Erlang C table values for
# 11..14 agents are 0.6821, 0.4494, 0.2853 and 0.1741.
@pytest.mark.parametrize(("agents", "published"), [(11, 0.6821), (12, 0.4494), (13, 0.2853), (14, 0.1741)])
def test_erlang_c_matches_published_table(agents: int, published: float) -> None:
    assert erlang_c(agents, 10.0) == pytest.approx(published, abs=5e-5)
    assert erlang_c(agents, 10.0) == pytest.approx(_erlang_c_by_definition(agents, 10), rel=1e-12)


def test_textbook_mmc_examples() -> None:
    # 120 customers/hour, 3 minutes each, 10 assistants (A = 6): "the probability of waiting is
    # about 0.10" (read off the Erlang C curve in the textbook exercise).
    assert erlang_c(10, 6.0) == pytest.approx(0.10, abs=0.005)
    # One call a minute, 3 minutes each, 5 agents (A = 3): P(no wait) = 1 - C(5, 3) = 0.7638.
    assert 1 - erlang_c(5, 3.0) == pytest.approx(0.7638, abs=5e-5)


def test_service_level_asa_and_occupancy_for_the_worked_example() -> None:
    # 12 agents, A = 10, AHT 180 s, 20 s threshold: SL = 1 - 0.4494 e^{-2*20/180} = 64.0 %,
    # ASA = 0.4494 * 180 / 2 = 40.4 s, occupancy 10/12.
    p = predict(12, 200, 180, 20)
    assert p.service_level == pytest.approx(0.6402, abs=5e-5)
    assert p.asa_s == pytest.approx(40.445, abs=1e-3)
    assert p.occupancy == pytest.approx(10 / 12)
    assert p.p_wait == pytest.approx(0.4494, abs=5e-5)


def test_erlang_b_known_value() -> None:
    # Erlang B table: 10 erlangs on 10 trunks blocks 21.46 % of calls.
    assert erlang_b(10, 10.0) == pytest.approx(0.2146, abs=5e-5)


def test_overload_and_zero_traffic() -> None:
    assert erlang_c(10, 10.0) == 1.0
    assert service_level(9, 10.0, 180, 20) == 0.0
    assert asa(10, 10.0, 180) == math.inf
    assert erlang_c(3, 0.0) == 0.0
    assert occupancy(0, 1.0) == 1.0


def test_numerically_stable_for_large_traffic() -> None:
    # 1,150 erlangs: A^N / N! overflows a float long before this; the recursion does not.
    c = erlang_c(1200, 1150.0)
    assert 0.0 < c < 1.0 and math.isfinite(c)
    sl = service_level(1200, 1150.0, 180, 20)
    assert 0.0 < sl < 1.0


def test_staffing_finds_the_smallest_count_reaching_the_target() -> None:
    assert staffing(200, 180, 20, 0.8) == 14  # 13 agents give 79.6 %, 14 give 88.8 %
    assert service_level(13, 10.0, 180, 20) < 0.8 <= service_level(14, 10.0, 180, 20)
    assert staffing(0, 180, 20) == 0
    with pytest.raises(ValueError):
        staffing(200, 180, 20, 1.0)


def test_staffing_large_centre_is_fast_and_sane() -> None:
    n = staffing(100_000, 180, 20, 0.8)  # 5,000 erlangs
    assert 5_000 < n < 5_100
