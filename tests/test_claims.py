"""Claims: the schema (one-line ConfigErrors at load time) and every verdict from constructed
results, with hand-checked effects, diverged/censored/failed runs counted, and --until-decided's
seed schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.cli import main
from suite.config import load_experiment
from suite.errors import ConfigError
from suite.judge.claims import Claim, validate_claims
from suite.judge.evaluate import evaluate_claim
from suite.judge.verdicts import direction_verdict, judge_direction
from suite.result import Result
from suite.schema import from_dict
from suite.sequential import until_decided
from tests.helpers import constructed_result

FIXTURE = Path(__file__).parent / "data" / "claims_smoke.yaml"


def result(arm: str, seed: int, value: float | None, status: str = "done", **metrics) -> Result:
    """A constructed result of metric ``m`` (None: the run recorded no value)."""
    values = dict(metrics)
    if value is not None:
        values["m"] = value
    return constructed_result(arm, seed, status, values if status == "done" else {})


def arms(a: list[float], b: list[float]) -> list[Result]:
    return [result("a", i, x) for i, x in enumerate(a)] + [
        result("b", i, x) for i, x in enumerate(b)
    ]


def claim(**kwargs) -> Claim:
    data = {"id": "c", "statement": "A beats B", "metric": "m", "direction": "higher", "arm": "a"}
    data.update(kwargs)
    return from_dict(Claim, data, "claims[0]")


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


def test_claim_from_the_documented_schema():
    c = claim(
        baseline="b",
        effect={"relative": 0.22},
        value=7.8,
        units="IS",
        references=[{"value": 417.5, "what": "Rainbow", "source": "Hessel et al. 2018"}],
    )
    assert c.effect.kind == "relative" and c.effect.size == 0.22
    assert c.references[0].value == 417.5
    assert c.to_dict()["effect"] == {"relative": 0.22}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "red"}, "claims[0].colour: unknown key 'colour'"),
        ({"direction": "up"}, "claims[0].direction: invalid value 'up' (valid: higher, lower)"),
        ({"effect": {"relative": 0.2}}, "an effect needs a baseline arm"),
        ({"baseline": "b", "effect": {"relative": 0.2, "absolute": 1.0}}, "exactly one of"),
        ({"baseline": "b", "effect": {"relatve": 0.2}}, "claims[0].effect.relatve: unknown key"),
        ({"baseline": "b", "effect": {"equivalence_margin": -0.1}}, "must be > 0"),
        ({"baseline": "a"}, "arm and baseline are both 'a'"),
        ({}, "nothing to measure"),
        ({"value": "high"}, "claims[0].value: expected a number"),
        # "15% lower" with lower-is-better is -0.15; +0.15 would claim A is worse.
        ({"direction": "lower", "baseline": "b", "effect": {"relative": 0.15}}, "is negative"),
        ({"baseline": "b", "effect": {"absolute": -1.0}}, "is positive"),
    ],
)
def test_bad_claims_are_one_line_config_errors(changes, message):
    with pytest.raises(ConfigError) as error:
        claim(**changes)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_claims_name_existing_arms_and_listed_metrics_and_unique_ids():
    good = {"id": "x", "statement": "s", "metric": "m", "direction": "higher", "arm": "a"}
    good_with_b = {**good, "baseline": "b"}
    assert len(validate_claims([good_with_b], ["a", "b"], ["m"])) == 1
    with pytest.raises(ConfigError, match=r"claims\[0\].baseline: no arm named 'c'.*valid: a, b"):
        validate_claims([{**good, "baseline": "c"}], ["a", "b"], [])
    with pytest.raises(ConfigError, match=r"claims\[0\].metric: .* not among"):
        validate_claims([{**good, "value": 1.0, "scale": "s", "metric": "n"}], ["a"], ["m"])
    with pytest.raises(ConfigError, match=r"claims\[1\].id: duplicate claim id 'x'"):
        validate_claims([good_with_b, good_with_b], ["a", "b"], [])
    with pytest.raises(ConfigError, match="expected a list of claims"):
        validate_claims({"id": "x"}, ["a"], [])


def test_claims_validated_at_load_time_against_the_files_arms(tmp_path, capsys):
    # --arms selects a subset; the claim's baseline is still a valid arm of the file.
    experiment = load_experiment(str(FIXTURE), "smoke", arms=["adam"])
    assert list(experiment.arms) == ["adam"]
    assert [c.id for c in experiment.claims] == ["test-adam-beats-sgd", "test-adam-faster"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(FIXTURE.read_text().replace("baseline: sgd_momentum", "baseline: sgdd", 1))
    assert main(["show", str(bad), "--budget", "smoke", "--arms", "adam"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {bad}: claims[0].baseline: no arm named 'sgdd' (valid: adam, sgd_momentum)"
    )


def test_bad_claim_in_file_prints_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(FIXTURE.read_text().replace("direction: higher", "direction: upward"))
    assert main(["show", str(bad), "--budget", "smoke"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {bad}: claims[0].direction: invalid value 'upward' (valid: higher, lower)"
    )


# --------------------------------------------------------------------------------------------
# Effects and verdicts from constructed results
# --------------------------------------------------------------------------------------------

# A = 1.25 B seed by seed (exact in binary), so every paired bootstrap replicate has
# mean(A)/mean(B) - 1 = 0.25 exactly: the CI is [0.25, 0.25] and the verdict follows from the
# claimed size alone.
B = [10.0, 20.0, 30.0, 40.0]
A = [1.25 * x for x in B]


@pytest.mark.parametrize(
    ("claimed", "expected"),
    # bands on the log ratio (issue 22): +10% -> [+4.9%, +15.4%]; +80% -> [+34%, +141%]
    [(0.25, "reproduced"), (0.1, "stronger"), (0.8, "weaker")],
)
def test_relative_effect_paired_exact(claimed, expected):
    outcome = evaluate_claim(claim(baseline="b", effect={"relative": claimed}), arms(A, B), "quick")
    assert outcome.paired and outcome.n == 4
    assert outcome.measured == pytest.approx(0.25, abs=1e-12)
    assert outcome.ci_low == outcome.ci_high == pytest.approx(0.25, abs=1e-12)
    assert outcome.verdict == expected
    assert "quick budget, n=4" in outcome.reason


def test_contradicted_and_inconclusive():
    worse = [0.75 * x for x in B]
    outcome = evaluate_claim(claim(baseline="b", effect={"relative": 0.2}), arms(worse, B), "quick")
    assert outcome.measured == pytest.approx(-0.25, abs=1e-12)
    assert outcome.verdict == "contradicted"
    # Differences +1, -1, +1, -1: mean 0, and the CI of the mean difference straddles 0.
    mixed = [b + d for b, d in zip(B, [1, -1, 1, -1], strict=True)]
    outcome = evaluate_claim(claim(baseline="b", effect={"absolute": 1.0}), arms(mixed, B), "full")
    assert outcome.measured == pytest.approx(0.0)
    assert outcome.ci_low < 0 < outcome.ci_high
    assert outcome.verdict == "inconclusive"


def test_lower_is_better_claim():
    # "25% lower": A = 0.75 B; raw relative effect -0.25.
    lower = [0.75 * x for x in B]
    c = claim(direction="lower", baseline="b", effect={"relative": -0.25})
    assert evaluate_claim(c, arms(lower, B), "quick").verdict == "reproduced"
    assert evaluate_claim(c, arms(B, lower), "quick").verdict == "contradicted"


def test_direction_only_claim():
    c = claim(baseline="b")
    assert evaluate_claim(c, arms(A, B), "quick").verdict == "reproduced"
    assert evaluate_claim(c, arms(B, A), "quick").verdict == "contradicted"
    assert direction_verdict(-2.0, -1.0, "lower", "quick", 5) == "reproduced"
    assert direction_verdict(-2.0, 1.0, "lower", "quick", 5) == "inconclusive"
    assert direction_verdict(1.0, 2.0, "lower", "quick", 5) == "contradicted"
    assert direction_verdict(1.0, 2.0, "higher", "smoke", 5) == "smoke-only"
    assert judge_direction(1.0, 2.0, direction="higher", budget="full", n=3).text.startswith(
        "reproduced at full budget, n=3 seeds per arm"
    )


def test_equivalence_claims():
    near = [1.01 * x for x in B]  # relative effect exactly +1%
    c = claim(baseline="b", effect={"equivalence_margin": 0.05})
    assert evaluate_claim(c, arms(near, B), "quick").verdict == "reproduced"
    assert evaluate_claim(c, arms(A, B), "quick").verdict == "contradicted"  # +25%
    # Absolute margin: A - B = +1 on every seed.
    plus_one = [x + 1 for x in B]
    c = claim(baseline="b", effect={"equivalence_margin_absolute": 2.0})
    outcome = evaluate_claim(c, arms(plus_one, B), "quick")
    assert outcome.measured == pytest.approx(1.0) and outcome.verdict == "reproduced"


def on_scale(runs: list[Result], scale: str = "s") -> list[Result]:
    """The runs, with the trainer declaring metric m on ``scale`` (suite/judge/metrics.py)."""
    for r in runs:
        r.details["metric_scales"] = {"m": scale}
    return runs


def test_value_claim_and_value_check():
    values = [7.9, 8.0, 8.1]
    runs = on_scale([result("a", i, x) for i, x in enumerate(values)])
    outcome = evaluate_claim(claim(value=8.0, scale="s"), runs, "quick")
    assert outcome.kind == "value" and outcome.measured == pytest.approx(8.0)
    # issue 22: an equivalence (TOST): Student t at 90%, 2 df: 8 +- 2.920 * 0.1 / sqrt(3) =
    # 8 +- 0.1686, within 8 +- 10% = [7.2, 8.8].
    assert outcome.ci_low == pytest.approx(8 - 0.1686, abs=1e-3)
    assert outcome.ci_high == pytest.approx(8 + 0.1686, abs=1e-3)
    assert outcome.method == "Student t" and outcome.confidence == pytest.approx(0.90)
    assert outcome.verdict == "reproduced"
    # [7, 8, 9] contains 8 but pins nothing: 90% CI 8 +- 1.686 reaches outside [7.2, 8.8].
    wide = on_scale([result("a", i, x) for i, x in enumerate([7.0, 8.0, 9.0])])
    assert evaluate_claim(claim(value=8.0, scale="s"), wide, "quick").verdict == "inconclusive"
    loose = claim(value=8.0, scale="s", value_tolerance=0.25)  # [6, 10]
    assert evaluate_claim(loose, wide, "quick").verdict == "reproduced"
    assert evaluate_claim(claim(value=20.0, scale="s"), runs, "quick").verdict == "weaker"
    lower = claim(value=20.0, direction="lower", scale="s")
    assert evaluate_claim(lower, runs, "quick").verdict == "stronger"
    # A claim with an effect and a value gets both verdicts.
    both = evaluate_claim(
        claim(baseline="b", effect={"relative": 0.25}, value=1000.0, scale="s"),
        on_scale(arms(A, B)),
        "quick",
    )
    assert both.verdict == "reproduced"
    assert both.value_check["verdict"] == "weaker"
    assert both.value_check["measured"] == pytest.approx(31.25)  # mean of A
    assert "value 1000: weaker" in both.line()


def test_unpaired_when_seeds_differ():
    runs = [result("a", i, x) for i, x in enumerate(A)]
    runs += [result("b", i + 10, x) for i, x in enumerate(B)]
    outcome = evaluate_claim(claim(baseline="b", effect={"relative": 0.25}), runs, "quick")
    assert not outcome.paired
    assert outcome.measured == 0.25  # mean(A) / mean(B) - 1
    assert outcome.ci_low < 0.25 < outcome.ci_high  # independent resampling: a real interval


def test_diverged_runs_enter_at_the_worst_observed_value():
    runs = [result("a", 0, 10.0), result("a", 1, 11.0), result("a", 2, None, status="diverged")]
    runs += [result("b", i, x) for i, x in enumerate([5.0, 6.0, 7.0])]
    c = claim(baseline="b", effect={"absolute": 1.0})
    outcome = evaluate_claim(c, runs, "quick")
    # Worst finite value in either arm (higher is better) is 5: A becomes [10, 11, 5].
    assert outcome.imputed_value == 5.0
    assert outcome.paired and outcome.n == 3
    assert outcome.measured == pytest.approx((10 + 11 + 5) / 3 - 6.0)
    assert [a["n_diverged"] for a in outcome.arms] == [1, 0]
    assert "diverged: a 1, b 0" in outcome.measured_text()
    # Excluded instead: A = [10, 11] on seeds 0, 1 against B on 0, 1, 2, so unpaired.
    excluded = evaluate_claim(c, runs, "quick", diverged="exclude")
    assert not excluded.paired and excluded.n == 2
    assert excluded.measured == pytest.approx(10.5 - 6.0)
    assert "diverged: a 1, b 0" in excluded.measured_text()
    # For a lower-is-better metric the worst value is the largest.
    lower = evaluate_claim(claim(direction="lower", baseline="b"), runs, "quick")
    assert lower.imputed_value == 11.0


def test_nan_metric_counts_as_diverged_and_failed_runs_are_left_out_and_counted():
    runs = arms([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    runs[0].metrics["m"] = float("nan")
    runs.append(result("b", 3, None, status="failed"))
    runs.append(result("b", 4, None))  # done but recorded no value of the metric
    outcome = evaluate_claim(claim(baseline="b"), runs, "quick")
    a, b = outcome.arms
    assert (a["n_diverged"], a["n"]) == (1, 3)
    assert (b["n_failed"], b["n_missing"], b["n_runs"]) == (1, 1, 5)
    # issue 22: a run that finished without the metric is not called "failed"
    assert "failed 1 (left out); finished without the metric 1 (left out)" in (
        outcome.measured_text()
    )


def test_censored_runs_are_counted_at_the_budget():
    # Lower is better: A reaches the threshold in 100/200/150 steps, B never does (censored at
    # 500). Three seeds: MIN_SEEDS is 3.
    runs = [
        result("a", 0, 100.0, **{"eval/reached_threshold": 1.0}),
        result("a", 1, 200.0, **{"eval/reached_threshold": 1.0}),
        result("a", 2, 150.0, **{"eval/reached_threshold": 1.0}),
        result("b", 0, 500.0, **{"eval/reached_threshold": 0.0}),
        result("b", 1, 500.0, **{"eval/reached_threshold": 0.0}),
        result("b", 2, 500.0, **{"eval/reached_threshold": 0.0}),
    ]
    for r in runs:
        r.metrics["eval/steps_to_threshold"] = r.metrics.pop("m")
    c = claim(metric="eval/steps_to_threshold", direction="lower", baseline="b")
    outcome = evaluate_claim(c, runs, "quick")
    assert [a["n_censored"] for a in outcome.arms] == [0, 3]
    assert "censored: a 0, b 3" in outcome.measured_text()
    assert outcome.measured == pytest.approx(150.0 - 500.0)
    assert outcome.verdict == "reproduced"


def test_smoke_only_not_run_and_undefined():
    c = claim(baseline="b", effect={"relative": 0.2})
    assert evaluate_claim(c, arms(A, B), "smoke").verdict == "smoke-only"
    assert evaluate_claim(claim(value=1.0), arms(A, B), "smoke").verdict == "smoke-only"
    for budget in ("smoke", "quick"):
        assert evaluate_claim(c, [], budget).verdict == "not-run"
        assert evaluate_claim(claim(value=1.0), [], budget).verdict == "not-run"
    only_a = [r for r in arms(A, B) if r.arm == "a"]
    assert evaluate_claim(c, only_a, "quick").verdict == "not-run"
    # Relative effect against a zero baseline mean: undefined, said so, never a crash.
    zero = evaluate_claim(c, arms(A, [0.0] * 4), "quick")
    assert zero.verdict == "inconclusive"
    assert "relative effect undefined: arm b is not positive in every run" in zero.reason
    # Every run diverged: nothing finite to compare.
    diverged = [result(arm, i, None, status="diverged") for arm in "ab" for i in range(3)]
    outcome = evaluate_claim(c, diverged, "quick")
    assert outcome.verdict == "inconclusive" and "no finite values" in outcome.reason
    outcome = evaluate_claim(claim(value=1.0), diverged, "quick")
    assert outcome.verdict == "inconclusive" and "no finite values (3 diverged)" in outcome.reason


def test_outcome_json_and_line():
    c = claim(
        baseline="b",
        effect={"relative": 0.25},
        units="greedy return",
        references=[{"value": 417.5, "what": "Rainbow, Breakout", "source": "Hessel 2018"}],
    )
    outcome = evaluate_claim(c, arms(A, B), "quick")
    data = json.loads(json.dumps(outcome.to_dict(), allow_nan=False))
    for key in ("id", "statement", "claimed", "measured", "ci_low", "ci_high", "verdict"):
        assert key in data
    assert data["n_diverged"] == {"a": 0, "b": 0}
    # Pairs (a_i, b_j) with a_i > b_j: 12.5 beats 1, 25 beats 2, 37.5 beats 3, 50 beats 4.
    assert data["p_improvement"]["estimate"] == pytest.approx(10 / 16)
    line = outcome.line()
    assert line.startswith("c: claim: +25% (a vs b) | measured (proxy; greedy return): +25%")
    assert "| published full-budget reference: 417.5 (Rainbow, Breakout, Hessel 2018) |" in line
    assert line.endswith("| reproduced (quick budget, n=4)")


# --------------------------------------------------------------------------------------------
# --until-decided
# --------------------------------------------------------------------------------------------


def test_until_decided_adds_batches_of_seeds_until_decided():
    calls = []

    def run_batch(seeds):
        calls.append(list(seeds))
        return ["reproduced", "inconclusive"] if len(calls) < 3 else ["reproduced", "weaker"]

    assert until_decided([0, 1, 2], 20, run_batch) == list(range(9))
    assert calls == [[0, 1, 2], list(range(6)), list(range(9))]


def test_until_decided_stops_at_max_seeds_and_continues_after_the_largest_seed():
    calls = []

    def run_batch(seeds):
        calls.append(list(seeds))
        return ["inconclusive"]

    until_decided([3, 7], 5, run_batch)
    assert calls == [[3, 7], [3, 7, 8, 9], [3, 7, 8, 9, 10]]


def test_until_decided_option_errors(tmp_path, capsys):
    base = ["run", str(FIXTURE), "--budget", "smoke", "--results", str(tmp_path)]
    assert main([*base, "--max-seeds", "3"]) == 2
    assert "--max-seeds: only applies with --until-decided" in capsys.readouterr().err
    assert main([*base, "--until-decided"]) == 2
    assert "--until-decided needs --max-seeds" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "quickstart",
                "--budget",
                "smoke",
                "--until-decided",
                "--max-seeds",
                "3",
                "--results",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "no claims to decide" in capsys.readouterr().err
