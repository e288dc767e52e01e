"""A report that tests several claims labels each at its Holm level (issue 22), everywhere the
labels are read: report data, `list claims`, the until-decided loop (all through claim_outcomes)."""

from __future__ import annotations

from suite.config import load_experiment
from suite.judge.evaluate import evaluate_claim
from suite.report.build import claim_outcomes, claims_data
from tests.helpers import constructed_result

SCORE = {
    "adam": [11.69, 11.74, 10.98, 9.47, 10.76, 10.13],
    "sgd": [8.58, 10.26, 9.43, 8.97, 8.96, 10.27],
}
STEPS = {
    "adam": [66676.0, 89031.0, 59625.0, 81842.0, 91188.0, 84546.0],
    "sgd": [29449.0, 86561.0, 66296.0, 67991.0, 66928.0, 67160.0],
}


def results() -> list:
    return [
        constructed_result(
            arm, seed, "done", {"eval/score": SCORE[arm][seed], "eval/steps_to_threshold": s}
        )
        for arm in ("adam", "sgd")
        for seed, s in enumerate(STEPS[arm])
    ]


def test_labels_are_at_the_holm_level_when_a_report_tests_two_claims():
    experiment = load_experiment("synthetic-demo", "quick")
    score_claim = experiment.claims[0]
    alone = evaluate_claim(score_claim, results(), "quick")
    # On its own the score claim is decided (p = 0.029 < 0.05) ...
    assert alone.verdict == "direction-only" and 0.025 < alone.p_value < 0.05
    # ... but the report tests two claims: its Holm level is 97.5%, so it is not.
    outcomes = claim_outcomes(experiment, results())
    assert outcomes[0].verdict == "inconclusive" and "Holm" in outcomes[0].reason
    data = claims_data(experiment, results())
    assert data[0]["verdict"] == "inconclusive" and data[0]["family_size"] == 2
    # The interval shown stays the unadjusted 95% one.
    assert (data[0]["ci_low"], data[0]["ci_high"]) == (alone.ci_low, alone.ci_high)
