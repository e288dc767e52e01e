"""Committed result records (suite/records.py) and the verdict ledger built from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.cli import main
from suite.errors import ResultsError
from suite.paths import PROJECT_ROOT
from suite.records import load, read_file, read_records, save
from suite.report import ledger
from suite.result import Result
from suite.store import Store

EXPERIMENT = "synthetic-demo"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, Path]:
    """A quick synthetic run (5 seeds per arm) and its records: (results dir, records root)."""
    base = tmp_path_factory.mktemp("records")
    results, root = base / "results", base / "records"
    assert main(["run", EXPERIMENT, "--results", str(results)]) == 0
    save(Store(results), root)
    return results, root


def test_save_writes_one_file_per_arm_with_every_finished_run(recorded):
    results, root = recorded
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jsonl"))
    assert files == [f"{EXPERIMENT}/quick/adam.jsonl", f"{EXPERIMENT}/quick/sgd.jsonl"]
    stored = {r.run_id: r for r in Store(results).results(EXPERIMENT)}
    kept = {r.run_id: r for r in read_records(root)}
    assert kept.keys() == stored.keys() and len(kept) == 10
    for run_id, result in kept.items():
        assert result.metrics == stored[run_id].metrics  # exact, NaN aside
        assert result.status == stored[run_id].status
        assert result.artifacts == {}


def test_save_again_changes_nothing(recorded):
    results, root = recorded
    before = {p: p.read_bytes() for p in root.rglob("*.jsonl")}
    save(Store(results), root)
    assert {p: p.read_bytes() for p in root.rglob("*.jsonl")} == before


def test_loaded_records_are_finished_runs_that_a_run_skips(recorded, tmp_path):
    _, root = recorded
    fresh = Store(tmp_path / "results")
    assert load(fresh, read_records(root)) == 10
    assert load(fresh, read_records(root)) == 0  # loading twice adds nothing
    before = {p: p.read_bytes() for p in (tmp_path / "results").rglob("result.json")}
    assert main(["run", EXPERIMENT, "--results", str(tmp_path / "results")]) == 0
    after = {p: p.read_bytes() for p in (tmp_path / "results").rglob("result.json")}
    assert after == before  # nothing ran again


def test_a_record_whose_run_id_is_not_its_config_is_refused(recorded, tmp_path):
    _, root = recorded
    line = json.loads((root / EXPERIMENT / "quick" / "adam.jsonl").read_text().splitlines()[0])
    line["optimizers"]["model"]["lr"] = 0.5  # edited by hand: the id no longer matches
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(line) + "\n")
    with pytest.raises(Exception, match="run id"):
        load(Store(tmp_path / "results"), read_file(bad))


def test_a_malformed_record_names_file_and_line(tmp_path):
    bad = tmp_path / "arm.jsonl"
    bad.write_text('{"run_id": "x"}\n{not json\n')
    with pytest.raises(ResultsError, match=r"arm.jsonl:1"):
        read_file(bad)


def test_ledger_gives_the_reports_verdicts(recorded, tmp_path):
    results, root = recorded
    assert main(["report", EXPERIMENT, "--results", str(results), "--json"]) == 0
    report = json.loads((results / EXPERIMENT / "quick" / "report.json").read_text())
    rows = {row["claim"]: row for row in ledger.build(root, [EXPERIMENT])}
    assert set(rows) == {"synthetic-score", "synthetic-steps"}
    for claim in report["claims"]:
        row = rows[claim["id"]]
        assert (row["verdict"], row["measured"], row["n"]) == (
            claim["verdict"],
            claim["measured"],
            min(claim["n_per_arm"].values()),
        )
        assert row["budget"] == "quick" and row["tuned"] is False
        assert row["command"] == f"python -m suite run {EXPERIMENT} --budget quick --seeds 5"


def test_ledger_lists_a_claim_without_records_as_not_run(tmp_path):
    rows = ledger.build(tmp_path, [EXPERIMENT])
    assert [(r["claim"], r["verdict"], r["n"]) for r in rows] == [
        ("synthetic-score", "not-run", 0),
        ("synthetic-steps", "not-run", 0),
    ]


def test_committed_verdicts_file_is_what_the_records_give():
    """VERDICTS.md is regenerated from records/ (`python -m suite verdicts --write`)."""
    rows = ledger.build(PROJECT_ROOT / "records")
    committed = (PROJECT_ROOT / ledger.LEDGER_FILE).read_text(encoding="utf-8")
    assert committed == ledger.markdown(rows)


def test_a_tuned_verdict_heads_the_ledger_only_when_both_arms_were_searched_alike():
    claim = {"arm": "a", "baseline": "b"}
    assert ledger._equal_tuning(claim, {"a": 6, "b": 6, "c": 2})
    assert not ledger._equal_tuning(claim, {"b": 6})  # only the baseline was tuned
    assert not ledger._equal_tuning(claim, {"a": 6, "b": 4})
    assert not ledger._equal_tuning(claim, {})
    assert not ledger._equal_tuning({"arm": "a"}, {"a": 6})  # a claim on one arm


def test_ledger_counts_a_stacks_time_once_and_names_the_claims_arms():
    from types import SimpleNamespace

    lone = SimpleNamespace(wall_time_s=100.0, details={})
    stacked = SimpleNamespace(wall_time_s=100.0, details={"stacked": {"method": "bmm", "seeds": 4}})
    assert Result.core_seconds.fget(lone) == 100.0
    assert (
        Result.core_seconds.fget(stacked) == 25.0
    )  # each of the 4 seeds records the stack's 100 s
    runs = [SimpleNamespace(arm=arm) for arm in ("a", "a@t00", "a@tuned", "b", "c@t01")]
    tuned = [r.arm for r in ledger._runs_behind(runs, {"a", "b"}, tuned=True)]
    assert tuned == ["a", "a@t00", "a@tuned", "b"]
    documented = [r.arm for r in ledger._runs_behind(runs, {"a", "b"}, tuned=False)]
    assert documented == ["a", "b"]
    experiment = SimpleNamespace(name="exp", budget="quick", arms={"a": {}, "b": {}, "c": {}})
    command = ledger._command(experiment, 10, tuned=True, stacked=True, arms=["a", "b"])
    assert (
        command
        == "python -m suite run exp --budget quick --arms a,b --seeds 10 --tuned --stack-seeds"
    )


# Both arms searched alike (2 trials of the lr each); the synthetic scores do not depend on it.
TUNED_DEMO = """
tuning:
  search:
    adam: {model: {lr: {log_uniform: [1.0e-4, 1.0e-2]}}}
    sgd: {model: {lr: {log_uniform: [1.0e-2, 1.0]}}}
  trials: 2
  seeds: [100]
  budget: quick
  select: {metric: eval/score, direction: higher}
"""


def test_the_tuned_verdict_heads_the_ledger_before_the_documented_arms_ran(tmp_path, monkeypatch):
    # `suite run --tuned` runs the tuned arms first: their verdict is the headline as soon as
    # their records are committed, with the documented comparison "not-run" beside it.
    path = tmp_path / "tuned-demo.yaml"
    path.write_text((PROJECT_ROOT / "configs" / f"{EXPERIMENT}.yaml").read_text() + TUNED_DEMO)
    monkeypatch.chdir(tmp_path)
    results, root = tmp_path / "results", tmp_path / "records"
    args = ["run", path.name, "--tuned", "--seeds", "3", "--workers", "2", "--no-report"]
    assert main([*args, "--results", str(results)]) == 0
    save(Store(results), root)
    for documented in root.rglob("*.jsonl"):
        if "@" not in documented.name:
            documented.unlink()
    rows = {row["claim"]: row for row in ledger.build(root, [path.name])}
    row = rows["synthetic-score"]
    assert row["tuned"] is True and row["n"] == 3, row
    assert row["verdict"] != "not-run" and row["documented_verdict"] == "not-run"
    assert row["command"].endswith("--seeds 3 --tuned")
    # What tuning chose, from the documented lr, for each of the claim's arms.
    assert row["tuned_settings"].startswith("adam model.lr 0.001 -> ")
    assert (
        "(2 trials" in row["tuned_settings"] and "; sgd model.lr 0.1 -> " in row["tuned_settings"]
    )


def test_a_claim_judged_by_one_experiment_is_one_row_naming_the_unrun_one():
    def row(claim, experiment, verdict):
        names = {"claim": claim, "experiment": experiment, "command": experiment}
        return {**names, "verdict": verdict, "statement": claim, "tuned": False}

    rows = [
        row("gan", "full-width", "not-run"),
        row("gan", "proxy", "inconclusive"),
        row("fid", "proxy", "not-run"),  # judged nowhere: stays not-run
        row("sac", "a", "weaker"),
        row("sac", "b", "reproduced"),  # judged twice: both rows stay
    ]
    folded = ledger.fold_not_run(rows)
    assert [(r["claim"], r["experiment"]) for r in folded] == [
        ("gan", "proxy"),
        ("fid", "proxy"),
        ("sac", "a"),
        ("sac", "b"),
    ]
    assert folded[0]["not_run_elsewhere"] == [{"experiment": "full-width", "command": "full-width"}]
    assert "- not run: its other experiment, `full-width`" in ledger.markdown(folded)


def test_a_tuned_setting_below_its_documented_one_is_flagged():
    def entry(tuned, documented, same=False):
        return {
            "tuned": {"m": {"mean": tuned}},
            "documented": {"m": {"mean": documented}},
            "selected_documented": same,
        }

    higher, lower = {"metric": "m", "direction": "higher"}, {"metric": "m", "direction": "lower"}
    flagged = ledger._below(higher, entry(3.57, 4.78))
    assert flagged == "; BELOW its documented setting on the evaluation seeds, m 3.57 vs 4.78"
    assert ledger._below(higher, entry(4.78, 3.57)) == ""
    assert ledger._below(lower, entry(4.78, 3.57)).startswith("; BELOW")
    assert ledger._below(higher, entry(3.0, 4.0, same=True)) == ""  # the same runs
    assert ledger._below(higher, entry(None, 4.0)) == ""  # not run yet
    # Tuned runs scored by one feature network, documented runs by another: not compared.
    mixed = entry(3.57, 4.78)
    mixed["tuned"]["m"]["scales"], mixed["documented"]["m"]["scales"] = ["w2"], ["none declared"]
    assert (
        ledger._below(higher, mixed) == "; its documented runs are on another scale, not compared"
    )


def test_records_root_keeps_a_second_folder_apart(recorded, tmp_path):
    # A parity bench's two sides share run ids (same experiment, arm and seeds): each side gets
    # its own records folder, and the repository's records/ (what the ledger reads) is untouched.
    results, _ = recorded
    side = tmp_path / "parity-records" / "lone"
    ledger_files = sorted((PROJECT_ROOT / "records").rglob("*.jsonl"))
    assert (
        main(["records", "save", EXPERIMENT, "--results", str(results), "--root", str(side)]) == 0
    )
    assert len(read_records(side, EXPERIMENT)) == 10
    assert sorted((PROJECT_ROOT / "records").rglob("*.jsonl")) == ledger_files
    fresh = tmp_path / "fresh"
    assert main(["records", "load", EXPERIMENT, "--results", str(fresh), "--root", str(side)]) == 0
    assert {r.run_id for r in Store(fresh).results(EXPERIMENT)} == {
        r.run_id for r in Store(results).results(EXPERIMENT)
    }


def test_the_ledger_names_the_scale_its_measured_runs_declare():
    from tests.helpers import constructed_result

    def run(arm, seed, scale=None):
        r = constructed_result(arm, seed, "done", {"m": 1.0})
        if scale:
            r.details["metric_scales"] = {"m": scale}
        return r

    # A tuned verdict: a@tuned and b@tuned on w2 are measured; a's documented runs (on no
    # declared scale) and the trials are not; c, without a search, stands as documented.
    used = [run("a@tuned", 0, "w2"), run("b@tuned", 0, "w2"), run("a", 0), run("a@t00", 100)]
    assert ledger._declared_scales(used, "m") == ["w2"]
    assert ledger._declared_scales([*used, run("c", 0, "w3")], "m") == ["w2", "w3"]
    assert ledger._declared_scales([run("a", 0), run("b", 0)], "m") == []  # none declared
