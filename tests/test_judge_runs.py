"""What a run counts as for a metric (suite/judge/runs.py), and that the judge, tuning and the
reports all count by it; verdict sentences written by one renderer (suite/judge/verdicts.py say)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from suite.judge import rules, verdicts
from suite.judge.runs import is_bad, is_censored, run_class
from suite.report.tuning import metric_stats
from suite.result import Result
from tests.helpers import constructed_result

STEPS = "eval/steps_to_threshold"


def run(seed: int, status: str = "done", arm: str = "a", **metrics) -> Result:
    return constructed_result(arm, seed, status, metrics)


def test_each_run_is_one_class_by_hand():
    assert run_class(run(0, "failed"), "m") == "failed"
    assert run_class(run(1, m=2.0), "other") == "missing"
    assert run_class(run(2, "diverged"), "m") == "diverged"
    assert run_class(run(3, m=math.nan), "m") == "diverged"  # a NaN value counts as diverged
    assert run_class(run(4, m=math.inf), "m") == "diverged"
    assert run_class(run(5, m=2.0), "m") == "finished"


def test_censored_only_a_steps_to_threshold_that_never_reached_it():
    never = run(0, **{STEPS: 5000.0, "eval/reached_threshold": 0.0})
    reached = run(1, **{STEPS: 3000.0, "eval/reached_threshold": 1.0})
    assert is_censored(never, STEPS) and not is_censored(reached, STEPS)
    assert not is_censored(never, "eval/return")  # only a steps-to-threshold metric


@pytest.mark.parametrize("flag", ["eval/collapsed", "eval/degenerate"])
def test_bad_is_anything_but_a_finished_run_that_is_not_degenerate(flag):
    assert not is_bad(run(0, m=2.0), "m")
    assert is_bad(run(0, m=2.0, **{flag: 1.0}), "m")
    assert not is_bad(run(0, m=2.0, **{flag: 0.0}), "m")
    for spoiled in (run(0, "failed"), run(0, "diverged"), run(0, m=math.nan), run(0, x=1.0)):
        assert is_bad(spoiled, "m")


def test_the_judge_and_the_tuning_report_count_the_same_runs():
    # 6 runs: 2 finished (one censored), a NaN value, a diverged run, a failed one, one without
    # the metric. Both count 2 values, 2 diverged (the NaN one too), 1 failed, 1 censored.
    results = [
        run(0, **{STEPS: 10.0, "eval/reached_threshold": 1.0}),
        run(1, **{STEPS: 40.0, "eval/reached_threshold": 0.0}),
        run(2, **{STEPS: math.nan, "eval/reached_threshold": 1.0}),
        run(3, "diverged"),
        run(4, "failed"),
        run(5, other=1.0),
    ]
    judged = rules.arm_values(results, "a", STEPS)
    counted = metric_stats(results, "a", STEPS)
    assert judged.n_failed == counted["n_failed"] == 1
    assert judged.n_diverged == counted["n_diverged"] == 2
    assert judged.n_censored == counted["n_censored"] == 1
    assert judged.n_missing == 1
    assert np.count_nonzero(np.isfinite(judged.values)) == counted["n"] == 2
    assert counted["mean"] == pytest.approx(25.0)


def test_a_verdict_is_written_from_its_reason():
    reason = verdicts.Reason("95% CI [-3.1, 12] contains 0")
    said = verdicts.say("inconclusive", "quick", 5, reason)
    assert said == verdicts.judge_effect(-3.1, 12.0, 5.0, budget="quick", n=5)
    assert said.body == "95% CI [-3.1, 12] contains 0"
    noted = said.noted(" (a note)")
    assert noted.text == said.text + " (a note)" and noted.body == said.body + " (a note)"
    assert verdicts.say("not-run", "full", 0, verdicts.Reason("x", unit=None)).text == (
        "not-run at full budget: x"
    )


def test_an_override_quotes_the_reason_not_the_head():
    # A rank-policy verdict's head holds ": " ("rank policy: diverged runs ranked last"): the
    # override quotes its reason, where splitting the sentence at ": " quoted half the head.
    ranked = verdicts.say(
        "reproduced", "quick", 5, verdicts.Reason("P(A better than B) = 0.9", ranked=True)
    )
    assert ranked.text == (
        "reproduced at quick budget, n=5 seeds per arm (rank policy: diverged runs ranked "
        "last): P(A better than B) = 0.9"
    )
    overridden = rules.inconclusive(ranked, "a censored in 2 runs")
    assert overridden.text == (
        "inconclusive at quick budget, n=5 seeds per arm: a censored in 2 runs (reproduced: "
        "P(A better than B) = 0.9)"
    )
    # A budget label with ": " in it (a --set value) stays whole in the quote too.
    budget = "quick (changed by --set task.env={id: X})"
    decided = verdicts.judge_direction(1.0, 2.0, direction="higher", budget=budget, n=5)
    assert rules.inconclusive(decided, "why").text.endswith(f"(reproduced: {decided.body})")
    assert decided.body == "95% CI [1, 2] lies entirely above 0 (higher is better)"


def test_a_claim_on_the_collapse_flag_judges_collapses_rather_than_setting_them_aside():
    # "An RMSprop discriminator avoids mode collapse": the baseline collapses in 4 of 5 seeds,
    # the arm in none. On eval/collapsed the collapses are the outcome, so the rule decides it;
    # on another metric the same baseline is "degenerate" and the claim is not interpretable.
    from suite.judge.claims import Claim
    from suite.judge.evaluate import evaluate_claim
    from suite.schema import from_dict

    arm = [run(s, arm="a", **{"eval/collapsed": 0.0, "eval/is": 5.0 + s / 10}) for s in range(5)]
    base = [
        run(s, arm="b", **{"eval/collapsed": float(s > 0), "eval/is": 2.0 + s / 10})
        for s in range(5)
    ]

    def judged(metric: str, direction: str):
        raw = {"id": "c", "statement": "s", "metric": metric, "direction": direction}
        claim = from_dict(Claim, raw | {"arm": "a", "baseline": "b"}, "claims[0]")
        return evaluate_claim(claim, arm + base, "quick")

    on_collapse, on_score = judged("eval/collapsed", "lower"), judged("eval/is", "higher")
    assert on_collapse.verdict == "reproduced" and "degenerate" not in on_collapse.reason
    assert on_score.verdict == "inconclusive" and "baseline degenerate" in on_score.reason


def test_a_refused_interval_says_so_instead_of_printing_n_a_bounds():
    # 4 seeds against 10: the imbalance guard refuses an interval (suite/judge/evaluate.py).
    from suite.judge.claims import Claim
    from suite.judge.evaluate import evaluate_claim
    from suite.schema import from_dict

    results = [run(s, arm="a", m=80.0 + s) for s in range(4)]
    results += [run(s, arm="b", m=90.0 + s / 2) for s in range(10)]
    raw = {"id": "c", "statement": "s", "metric": "m", "direction": "lower", "arm": "a"}
    claim = from_dict(Claim, raw | {"baseline": "b", "effect": {"relative": -0.15}}, "claims[0]")
    outcome = evaluate_claim(claim, results, "quick")
    assert outcome.verdict == "inconclusive"
    text = outcome.measured_text()
    assert "no CI: refused" in text and "n/a" not in text
