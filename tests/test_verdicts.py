"""Tests for suite.verdicts: every label from constructed confidence intervals."""

from __future__ import annotations

import pytest

from suite.judge import verdicts as v
from suite.judge.verdicts import equivalence_verdict, orient, value_verdict, verdict


def test_verdict_constants():
    assert v.VERDICTS == (
        "reproduced",
        "direction-only",
        "weaker",
        "stronger",
        "contradicted",
        "inconclusive",
        "not-run",
        "smoke-only",
        "supported",
        "partly-supported",
        "unsupported",
    )


# --------------------------------------------------------------------------------------------
# Effect claims
# --------------------------------------------------------------------------------------------


# Claimed effect +0.22 (A 22% higher), budget "full", 10 seeds per arm.
@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.12, 0.30, "reproduced"),  # excludes 0, within [0.11, 0.33] (tolerance 2)
        # issue 12: contains 0.22 but reaches below 0.22 / 2: the size is not pinned down.
        (0.10, 0.30, "direction-only"),
        (0.05, 10.0, "direction-only"),  # 20 times wider than the claim
        (0.11, 0.33, "reproduced"),  # the band's edges count as inside
        # issue 22: the band is symmetric around the claim, [0.22 / 2, 0.22 * 1.5]
        (0.22, 0.40, "direction-only"),
        # issue 22: weaker / stronger only outside the band, not merely below / above 0.22
        (0.05, 0.15, "direction-only"),
        (0.30, 0.50, "direction-only"),
        (0.03, 0.10, "weaker"),  # same side, entirely below the band
        (0.34, 0.50, "stronger"),  # same side, entirely above the band
        (-0.05, 0.40, "inconclusive"),  # contains 0
        (0.00, 0.40, "inconclusive"),  # touching 0 counts as containing it
        (-0.30, -0.10, "contradicted"),  # entirely on the other side of 0
    ],
)
def test_verdict_positive_claim(low, high, expected):
    assert verdict(low, high, 0.22, budget="full", n=10) == expected


# Claimed effect -3.0 in raw units (e.g. A's loss 3 lower than B's).
@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-4.0, -2.0, "reproduced"),  # within the band [-4.5, -1.5]
        (-1.4, -1.0, "weaker"),  # smaller in magnitude than 1.5
        (-6.0, -4.6, "stronger"),  # larger in magnitude than 4.5
        (-2.5, -1.0, "direction-only"),  # overlaps the band
        (-1.0, 1.0, "inconclusive"),
        (0.5, 2.0, "contradicted"),
    ],
)
def test_verdict_negative_claim(low, high, expected):
    assert verdict(low, high, -3.0, budget="full", n=10) == expected


@pytest.mark.parametrize(
    ("low", "high", "claimed"),
    [
        (-4.0, -2.0, -3.0),
        (-2.5, -1.0, -3.0),
        (-6.0, -4.0, -3.0),
        (-1.0, 1.0, -3.0),
        (0.5, 2.0, -3.0),
        (-0.2, -0.1, -0.15),
    ],
)
def test_direction_lower_flip_does_not_change_label(low, high, claimed):
    # "FID 15% lower" is raw A/B - 1 = -0.15; orient() flips it to +0.15 ("A better") and the CI
    # to [-high, -low]. verdict() aligns with the claim's sign, so the label is the same.
    o_low, o_high, o_claimed = orient(low, high, claimed, "lower")
    assert (o_low, o_high, o_claimed) == (-high, -low, -claimed)
    assert o_claimed > 0
    assert verdict(o_low, o_high, o_claimed, budget="quick", n=5) == verdict(
        low, high, claimed, budget="quick", n=5
    )
    assert orient(low, high, claimed, "higher") == (low, high, claimed)


def test_lower_is_better_worked_example():
    # Claim: A's FID is 15% lower than B's (band [-7.5%, -22.5%] in raw units). Measured A/B - 1
    # with CI [-0.30, -0.23]: lower by more than the band -> stronger. CI [+0.02, +0.10]: A is
    # worse -> contradicted.
    assert verdict(*orient(-0.30, -0.23, -0.15, "lower"), budget="full", n=8) == "stronger"
    assert verdict(*orient(0.02, 0.10, -0.15, "lower"), budget="full", n=8) == "contradicted"
    assert verdict(*orient(-0.20, -0.08, -0.15, "lower"), budget="full", n=8) == "reproduced"
    assert verdict(*orient(-0.20, -0.05, -0.15, "lower"), budget="full", n=8) == "direction-only"
    assert verdict(*orient(-0.07, -0.05, -0.15, "lower"), budget="full", n=8) == "weaker"
    assert verdict(*orient(-0.10, -0.05, -0.15, "lower"), budget="full", n=8) == "direction-only"


def test_smoke_and_not_run_take_precedence():
    # Smoke never gives a reproduction verdict, whatever the CI or n.
    assert verdict(0.1, 0.3, 0.22, budget="smoke", n=10) == "smoke-only"
    # issue 12: one precheck; no runs at all is "not-run" at every budget (as the claim path
    # always said), before "smoke-only".
    assert verdict(float("nan"), float("nan"), 0.22, budget="smoke", n=0) == "not-run"
    assert verdict(float("nan"), float("nan"), 0.22, budget="quick", n=0) == "not-run"
    # A single seed gives a zero-width interval: no evidence.
    assert verdict(0.22, 0.22, 0.22, budget="full", n=1) == "inconclusive"


def test_verdict_rejects_bad_input():
    with pytest.raises(ValueError, match="equivalence"):
        verdict(-0.1, 0.1, 0.0, budget="full", n=5)
    with pytest.raises(ValueError, match="undefined"):
        verdict(float("nan"), 0.1, 0.2, budget="full", n=5)
    with pytest.raises(ValueError):
        verdict(0.3, 0.1, 0.2, budget="full", n=5)
    with pytest.raises(ValueError):
        verdict(0.1, 0.3, 0.2, budget="full", n=-1)
    with pytest.raises(ValueError):
        orient(0.1, 0.3, 0.2, "sideways")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Equivalence claims
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.03, 0.04, "reproduced"),  # within +-0.05
        (0.01, 0.04, "reproduced"),  # within the margin though it excludes 0 (TOST)
        (-0.05, 0.05, "reproduced"),  # margin edges are inclusive
        (-0.10, 0.20, "inconclusive"),  # contains 0, too wide for the margin
        # issue 12 (TOST): excluding 0 is not a difference beyond the margin; only a CI entirely
        # outside the margin contradicts parity.
        (0.02, 0.20, "inconclusive"),
        (0.06, 0.20, "contradicted"),
        (-0.30, -0.06, "contradicted"),
    ],
)
def test_equivalence_verdict(low, high, expected):
    assert equivalence_verdict(low, high, 0.05, "full", 10) == expected


def test_equivalence_verdict_special_cases():
    assert equivalence_verdict(-0.01, 0.01, 0.05, "smoke", 10) == "smoke-only"
    assert equivalence_verdict(float("nan"), float("nan"), 0.05, "full", 0) == "not-run"
    assert equivalence_verdict(0.0, 0.0, 0.05, "full", 1) == "inconclusive"
    with pytest.raises(ValueError, match="margin"):
        equivalence_verdict(-0.01, 0.01, 0.0, "full", 10)


# --------------------------------------------------------------------------------------------
# Absolute-value claims
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "direction", "expected"),
    [
        # issue 22: a value is an equivalence, its band 7.8 +- 10% = [7.02, 8.58]
        (7.5, 8.1, "higher", "reproduced"),
        (6.0, 6.9, "higher", "weaker"),  # IS entirely below the band: worse
        (8.6, 9.4, "higher", "stronger"),
        (7.5, 8.1, "lower", "reproduced"),
        (6.0, 6.9, "lower", "stronger"),  # e.g. FID below the band: better
        (8.6, 9.4, "lower", "weaker"),
        (7.8, 7.8, "higher", "reproduced"),
        (7.0, 7.6, "higher", "inconclusive"),  # below 7.8 but reaching into the band
        (2.0, 14.9, "higher", "inconclusive"),  # contains 7.8 but is far too wide
    ],
)
def test_value_verdict(low, high, direction, expected):
    assert value_verdict(low, high, 7.8, "full", 10, direction) == expected


def test_value_verdict_special_cases():
    assert value_verdict(7.5, 8.1, 7.8, "smoke", 3) == "smoke-only"
    assert value_verdict(float("nan"), float("nan"), 7.8, "full", 0) == "not-run"
    assert value_verdict(7.8, 7.8, 7.8, "full", 1) == "inconclusive"
    with pytest.raises(ValueError):
        value_verdict(7.5, 8.1, 7.8, "full", 10, "up")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Verdict records with their sentence
# --------------------------------------------------------------------------------------------


def test_relative_effects_are_quoted_as_percentages():
    # The DQN Breakout claim (+22%) against its measured log-ratio interval at n = 10.
    out = v.judge_effect(-0.3759, -0.05904, 0.22, budget="quick", n=10, percent=True)
    assert out.label == "contradicted"
    assert out.text.endswith(
        "95% CI [-37.6%, -5.9%] lies entirely on the opposite side of 0 from the claimed "
        "effect +22%"
    )
    near = v.judge_effect(0.15, 0.3, 0.22, budget="quick", n=10, percent=True)
    assert near.label == "reproduced"
    # the band on the log ratio: exp(log(1.22) x [1/2, 3/2]) - 1
    assert "within the band [+10.5%, +34.8%]" in near.text
    parity = v.judge_equivalence(-0.04, 0.03, 0.05, budget="quick", n=10, percent=True)
    assert "90% CI [-4%, +3%] lies within the equivalence margin +-5%" in parity.text


def test_judge_effect_text():
    out = v.judge_effect(-3.1, 12.0, 5.0, budget="quick", n=5)
    assert out == v.Verdict(
        "inconclusive",
        "quick",
        5,
        "inconclusive at quick budget, n=5 seeds per arm: 95% CI [-3.1, 12] contains 0",
    )
    for low, high, label in [
        (4.0, 6.0, "reproduced"),
        (1.0, 2.0, "weaker"),
        (7.6, 9.0, "stronger"),
        (-2.0, -1.0, "contradicted"),
    ]:
        out = v.judge_effect(low, high, 5.0, budget="full", n=12)
        assert out.label == label
        assert out.text.startswith(f"{label} at full budget, n=12 seeds per arm: 95% CI")
    assert v.judge_effect(1.0, 2.0, 5.0, budget="smoke", n=2).text.startswith(
        "smoke-only at smoke budget, n=2 seeds per arm: a smoke run never"
    )
    assert v.judge_effect(0.0, 0.0, 5.0, budget="full", n=0).text == (
        "not-run at full budget: no seeds completed"
    )
    assert "need at least 3" in v.judge_effect(1.0, 1.0, 5.0, budget="full", n=1).text
    assert "90% CI" in v.judge_effect(4.0, 6.0, 5.0, budget="full", n=9, confidence=0.9).text


def test_judge_equivalence_and_value_text():
    eq = v.judge_equivalence(-0.02, 0.03, 0.05, budget="full", n=10)
    assert eq.label == "reproduced"
    assert eq.text == (
        "reproduced at full budget, n=10 seeds per arm: 90% CI [-0.02, 0.03] lies within "
        "the equivalence margin +-0.05 (TOST at alpha 0.05)"
    )
    assert v.judge_equivalence(-0.2, 0.3, 0.05, budget="full", n=10).label == "inconclusive"
    assert v.judge_equivalence(0.1, 0.3, 0.05, budget="full", n=10).label == "contradicted"
    assert v.judge_equivalence(0.04, 0.3, 0.05, budget="full", n=10).label == "inconclusive"
    val = v.judge_value(6.0, 6.9, 7.8, budget="full", n=10)
    assert val.label == "weaker"
    assert val.text == (
        "weaker at full budget, n=10 seeds: 90% CI [6, 6.9] lies entirely below [7.02, 8.58], "
        "the claimed value 7.8 +- 0.78 (higher is better)"
    )
    wide = v.judge_value(-3.9, 14.9, 7.8, budget="full", n=3)
    assert wide.label == "inconclusive" and "too wide" in wide.text
    fid = v.judge_value(20.0, 22.0, 25.0, budget="full", n=10, direction="lower")
    assert fid.label == "stronger" and "below" in fid.text
    assert all(
        j.label in v.VERDICTS
        for j in (eq, val, fid, v.judge_value(7.5, 8.1, 7.8, budget="smoke", n=2))
    )


def test_inconclusive_text_says_when_the_claimed_size_is_ruled_out():
    from suite.judge.verdicts import judge_effect

    ruled_out = judge_effect(-0.004, 0.045, -0.15, budget="quick", n=3)
    assert ruled_out.label == "inconclusive"
    assert "claimed size is ruled out" in ruled_out.text
    covers_both = judge_effect(-0.2, 0.05, -0.15, budget="quick", n=3)
    assert covers_both.label == "inconclusive"
    assert "ruled out" not in covers_both.text
