"""Claims that state settings and compare nothing (issue 24: dqn-rmsprop)."""

from __future__ import annotations

import pytest

from suite.config import load_experiment
from suite.judge.claims import Claim
from suite.judge.evaluate import evaluate_claim, evaluate_claims
from suite.schema import from_dict
from tests.helpers import constructed_result

SETTINGS = {
    "id": "s",
    "statement": "DQN: RMSprop(lr=0.00025, alpha=0.95), as in the original paper",
    "metric": "eval/return_final",
    "direction": "higher",
    "arm": "rmsprop",
    "settings": "supported",
    "fact_check": "S: Nature DQN, Extended Data Table 1",
}


def claim(**changes) -> Claim:
    return from_dict(Claim, {**SETTINGS, **changes}, "claims[0]")


def results(arm: str, values: list[float]) -> list:
    return [
        constructed_result(arm, seed, "done", {"eval/return_final": v})
        for seed, v in enumerate(values)
    ]


def test_the_verdict_is_the_fact_check_whatever_another_arm_scored():
    # RMSprop far below Adam: a comparison would say so; a statement of settings does not.
    runs = results("rmsprop", [2.0, 3.0, 4.0]) + results("adam", [20.0, 21.0, 22.0])
    outcome = evaluate_claim(claim(), runs, "quick")
    assert outcome.verdict == "supported" and outcome.kind == "settings"
    assert outcome.measured == pytest.approx(3.0)
    assert outcome.ci_low == pytest.approx(3.0 - 4.302653 / 3**0.5, rel=1e-5)  # t(2) 97.5%
    assert [a["name"] for a in outcome.arms] == ["rmsprop"]
    assert "no arm is judged against another" in outcome.reason
    assert outcome.p_value is None
    assert outcome.measured_text().startswith("3 (95% CI ")


def test_a_settings_claim_without_runs_keeps_its_fact_check_and_says_not_run():
    outcome = evaluate_claim(claim(settings="partly-supported"), [], "quick")
    assert outcome.verdict == "partly-supported"
    assert outcome.measured_text() == "not run" and outcome.n == 0


def test_a_published_score_is_judged_as_a_value_beside_it():
    outcome = evaluate_claim(
        claim(value=3.0, scale="minatar-return", metric="eval/return_final"),
        results("rmsprop", [2.9, 3.0, 3.1, 3.0]),
        "quick",
    )
    assert outcome.verdict == "supported"
    assert outcome.value_check is not None and outcome.value_check["claimed"] == "3"


def test_a_settings_claim_is_not_part_of_the_holm_family():
    runs = results("rmsprop", [2.0, 3.0, 4.0])
    (outcome,) = evaluate_claims([claim()], runs, "quick")
    assert outcome.family_size == 1 and outcome.verdict == "supported"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"baseline": "adam"}, "compares nothing"),
        ({"fact_check": ""}, "needs its fact_check"),
        ({"settings": "maybe"}, "settings"),
    ],
)
def test_bad_settings_claims_are_refused(changes, message):
    with pytest.raises(Exception, match=message):
        claim(**changes).validate()


def test_dqn_rmsprop_is_a_settings_claim_with_no_baseline():
    experiment = load_experiment("dqn-breakout-adam-vs-rmsprop", "quick")
    (dqn_rmsprop,) = [c for c in experiment.claims if c.id == "dqn-rmsprop"]
    assert dqn_rmsprop.settings == "supported" and dqn_rmsprop.baseline is None
