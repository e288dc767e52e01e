"""The verdict ledger (``python -m suite verdicts``): every claim judged on the committed records.

Built only from ``records/`` (suite/records.py), never from a local results store, so every
clone prints the same ledger; ``VERDICTS.md`` at the root is its Markdown, checked by a test.
Per claim: the verdict at the largest budget with records for both of its arms, its effect and
interval, seeds per arm, whether the arms were tuned at an equal budget (then the tuned verdict
is the headline and the documented one stands beside it), hardware, compute and the command.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from suite.result import Result

LEDGER_FILE = "VERDICTS.md"
# Budgets from the largest down: a claim is shown at the first one with records of both arms.
BUDGET_ORDER = ("full", "quick", "smoke")


def _claim_arms(claim: dict[str, Any]) -> list[str]:
    return [a for a in (claim.get("arm"), claim.get("baseline")) if a]


def _equal_tuning(claim: dict[str, Any], trials_per_arm: dict[str, int]) -> bool:
    """Whether both arms of a comparison were searched, with the same number of trials: only
    then is the tuned verdict the headline (a baseline tuned against a documented arm, or the
    other way round, is not a comparison at an equal budget)."""
    counts = {trials_per_arm.get(arm, 0) for arm in _claim_arms(claim)}
    return len(_claim_arms(claim)) == 2 and len(counts) == 1 and counts != {0}


def _has_runs(claim: dict[str, Any]) -> bool:
    counts = claim.get("n_per_arm") or {}
    return all(counts.get(arm, 0) > 0 for arm in _claim_arms(claim))


def _hardware(results: list[Result]) -> str:
    seen = []
    for result in results:
        hw = result.environment.get("hardware", {})
        text = hw.get("gpu") or f"{hw.get('cpu', '?')} ({hw.get('cpu_count', '?')} cores)"
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) or "-"


def _command(experiment, seeds: int, tuned: bool, stacked: bool, arms: list[str]) -> str:
    words = ["python -m suite run", experiment.name, "--budget", experiment.budget]
    if set(arms) < set(experiment.arms):  # the claim's arms, not every arm of the file
        words += ["--arms", ",".join(arms)]
    words += ["--seeds", str(seeds)]
    if tuned:
        words.append("--tuned")
    if stacked:
        words.append("--stack-seeds")
    return " ".join(words)


def _tuned_settings(claim: dict[str, Any], section: dict[str, Any]) -> str:
    """What tuning chose for the claim's arms: 'ARM q.lr 6.25e-05 -> 0.0004992 (4 trials)'."""
    parts = []
    for entry in section.get("arms", []):
        if entry["arm"] not in _claim_arms(claim) or not entry.get("selected"):
            continue
        chosen = entry["selected"]["settings"]
        changes = ", ".join(
            f"{key} {entry['documented_settings'].get(key, '?'):g} -> {value:g}"
            for key, value in chosen.items()
        )
        if entry["selected_documented"]:  # a trial of include_documented won
            changes = f"the documented {', '.join(f'{k} {v:g}' for k, v in chosen.items())}"
        # A choice at the edge of the trials: a wider search might choose further out.
        edges = ", ".join(entry["at_edge"])
        edge = f", at the edge of its trials: {edges}" if edges else ""
        parts.append(
            f"{entry['arm']} {changes} ({entry['trials']} trials{edge}{_below(claim, entry)})"
        )
    rule = f"on seeds {section['seeds']}, {section['metric']}, {section['budget']} budget"
    return f"{'; '.join(parts)}; {rule}"


def _below(claim: dict[str, Any], entry: dict[str, Any]) -> str:
    """A warning where the tuned setting scored worse than the documented one on the
    evaluation seeds (selection on few tuning seeds can pick by luck): the tuned comparison then
    faces a weaker arm than no tuning would."""
    metric = claim["metric"]
    tuned, documented = entry["tuned"].get(metric, {}), entry["documented"].get(metric, {})
    t, d = tuned.get("mean"), documented.get("mean")
    if t is None or d is None or entry["selected_documented"]:
        return ""
    if tuned.get("scales") != documented.get("scales"):  # two feature networks: no comparison
        return "; its documented runs are on another scale, not compared"
    worse = t < d if claim["direction"] == "higher" else t > d
    if not worse:
        return ""
    return f"; BELOW its documented setting on the evaluation seeds, {metric} {t:.4g} vs {d:.4g}"


def _runs_behind(results: list[Result], arms: set[str], tuned: bool) -> list[Result]:
    """The runs a verdict's compute and hardware count: a tuned verdict's hold its arms'
    trials (ARM@tNN) and tuned runs (ARM@tuned); a documented verdict's only the arms' own
    runs, though trials of the same arms exist (a rule judged on a tuned experiment's arm)."""
    return [r for r in results if (r.arm.split("@")[0] if tuned else r.arm) in arms]


def _declared_scales(used: list[Result], metric: str) -> list[str]:
    """The scales the measured runs declare for ``metric`` ([] if none does): not the trials,
    and an arm's documented runs only where it has no ARM@tuned runs (a documented setting
    selected, or an arm without a search)."""
    from suite.judge.metrics import run_scales
    from suite.tuning import run_kind

    tuned = {r.arm.split("@")[0] for r in used if run_kind(r.arm) == "tuned"}
    measured = [
        r for r in used if run_kind(r.arm) == "tuned" or not ("@" in r.arm or r.arm in tuned)
    ]
    scales = run_scales(measured, metric)
    return [] if scales == ["none declared"] else scales


def _row(
    experiment, claim: dict, tuned_claim: dict | None, results: list[Result], section: dict | None
) -> dict:
    headline = tuned_claim if tuned_claim and _has_runs(tuned_claim) else claim
    arms = set(_claim_arms(claim))
    used = _runs_behind(results, arms, tuned=headline is tuned_claim)
    n_per_arm = headline.get("n_per_arm") or {}
    row = {
        "claim": claim["id"],
        "statement": claim["statement"],
        "experiment": experiment.name,
        "budget": experiment.budget,
        "budget_label": headline["budget"],
        "verdict": headline["verdict"],
        "verdict_text": headline["verdict_text"],
        "reason": headline["reason"],
        "measured": headline["measured"],
        "ci_low": headline["ci_low"],
        "ci_high": headline["ci_high"],
        "measured_text": headline["measured_text"],
        "claimed": headline["claimed"],
        "units": claim.get("units", ""),
        "n": min((n_per_arm.get(a, 0) for a in _claim_arms(claim)), default=0),
        "n_per_arm": n_per_arm,
        "tuned": headline is tuned_claim,
        "documented_verdict": claim["verdict"] if headline is tuned_claim else None,
        "documented_measured_text": claim["measured_text"] if headline is tuned_claim else None,
        "tuned_settings": _tuned_settings(claim, section) if headline is tuned_claim else None,
        "holm_p": headline.get("holm_p"),
        "hardware": _hardware(used),
        "compute_s": round(sum(r.core_seconds for r in used), 1),
        "stacked": any(r.details.get("stacked") for r in used),
        "scales": _declared_scales(used, claim["metric"]),
    }
    seeds = max(n_per_arm.values(), default=0)
    row["command"] = _command(experiment, seeds, row["tuned"], row["stacked"], _claim_arms(claim))
    return row


def _experiment_rows(name: str, store, results: list[Result]) -> list[dict[str, Any]]:
    """One row per claim of experiment ``name``, each at its largest budget with records."""
    from suite.config import load_experiment
    from suite.report import tuning
    from suite.report.build import summary_data

    rows: dict[str, dict[str, Any]] = {}
    for budget in BUDGET_ORDER:
        at_budget = [r for r in results if r.budget == budget]
        if not at_budget:
            continue
        experiment = load_experiment(name, budget)
        claims = summary_data(experiment, store)["claims"]
        with tempfile.TemporaryDirectory() as scratch:
            section = tuning.tuning_section(experiment, store, Path(scratch))
        tuned = {c["id"]: c["tuned"] for c in (section or {}).get("claims", [])}
        if section and section.get("not_run"):
            tuned = {}
        for claim in claims:
            fair = _equal_tuning(claim, (section or {}).get("trials_per_arm") or {})
            headline = tuned.get(claim["id"]) if fair else None
            # The tuned arms run first (suite run --tuned): a verdict before the documented ones.
            ran = _has_runs(claim) or (headline is not None and _has_runs(headline))
            if claim["id"] not in rows and ran:
                rows[claim["id"]] = _row(experiment, claim, headline, at_budget, section)
    return list(rows.values())


def _not_run(name: str) -> list[dict[str, Any]]:
    from suite.config import load_experiment

    experiment = load_experiment(name, "quick")
    return [
        {
            "claim": c.id,
            "statement": c.statement,
            "experiment": name,
            "budget": None,
            "verdict": "not-run",
            "n": 0,
            "tuned": False,
            "command": f"python -m suite run {name}",
        }
        for c in experiment.claims
    ]


def documented_experiments() -> list[str]:
    """The experiments of configs/ whose claims are documented ones (CLAIMS.md): every file but
    those of the ``synthetic`` trainer, whose claims are a simulated truth."""
    from suite.config import CONFIG_DIR, experiment_names
    from suite.schema import read_yaml

    return [
        n
        for n in experiment_names()
        if read_yaml(CONFIG_DIR / f"{n}.yaml").get("trainer") != "synthetic"
    ]


def build(records_root: Path, names: list[str] | None = None) -> list[dict[str, Any]]:
    """The ledger: one dict per claim of each experiment (default: the documented ones; a name
    may also be the path of an experiment file)."""
    from suite.records import load, read_records
    from suite.store import Store

    records = read_records(records_root)
    ledger = []
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(Path(scratch) / "results")
        load(store, records)
        for name in documented_experiments() if names is None else names:
            # A name in configs/, or the path of a user's file (its results carry the stem).
            mine = [r for r in records if r.experiment == Path(name).stem]
            rows = _experiment_rows(name, store, mine) if mine else []
            done = {row["claim"] for row in rows}
            rows += [r for r in _not_run(name) if r["claim"] not in done]
            ledger += rows
    return fold_not_run(ledger)


def fold_not_run(ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per claim where another experiment judged it: an experiment of the same claim
    with no records (the full-width GPU setup beside its CPU proxy) is named under the judged
    row (``not_run_elsewhere``) rather than listed as a second, not-run verdict of the claim."""
    judged: dict[str, dict[str, Any]] = {}
    for row in ledger:  # the first judged row of each claim
        if row["verdict"] != "not-run":
            judged.setdefault(row["claim"], row)
    kept = []
    for row in ledger:
        if row["verdict"] == "not-run" and row["claim"] in judged:
            other = judged[row["claim"]].setdefault("not_run_elsewhere", [])
            other.append({"experiment": row["experiment"], "command": row["command"]})
        else:
            kept.append(row)
    return kept


def _cell(value: Any) -> str:
    return "-" if value in (None, "") else str(value).replace("|", "/").replace("\n", " ")


def _hours(seconds: float | None) -> str:
    return "-" if not seconds else f"{seconds / 3600:.2f} h"


def markdown(ledger: list[dict[str, Any]]) -> str:
    """VERDICTS.md: the table, then each claim's command, hardware and why."""
    lines = [
        "# Verdicts",
        "",
        "Every documented claim judged on the committed result records (`records/`), by",
        "`python -m suite verdicts` (this file: `python -m suite verdicts --write`). Measured",
        "values are the suite's proxies at the stated budget, not the claims' original setups.",
        "",
        "| claim | experiment | budget | verdict | measured | n per arm | tuned |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in ledger:
        per_arm = ", ".join(f"{arm} {n}" for arm, n in (row.get("n_per_arm") or {}).items())
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    row["claim"],
                    row["experiment"],
                    row.get("budget_label") or row.get("budget"),
                    row["verdict"],
                    row.get("measured_text"),
                    per_arm or "0",
                    "yes (equal budget)" if row["tuned"] else "no",
                )
            )
            + " |"
        )
    lines.append("")
    for row in ledger:
        # A claim can be judged by two experiments (a CPU proxy and the full setup): both rows.
        title = f"{row['claim']} ({row['experiment']})"
        lines += [f"## {title}", "", f"- claim: {row['statement']}"]
        if row.get("budget"):
            lines.append(f"- verdict: **{row['verdict_text']}**; {_cell(row.get('reason'))}")
            if row.get("tuned_settings"):
                lines.append(f"- tuned at an equal budget: {row['tuned_settings']}")
            if row.get("documented_verdict"):
                lines.append(
                    f"- as documented (untuned): {row['documented_verdict']}, "
                    f"{row['documented_measured_text']}"
                )
            lines.append(f"- units: {_cell(row.get('units'))}")
            if row.get("scales"):
                lines.append(f"- scale (declared by the runs): {'; '.join(row['scales'])}")
            lines.append(
                f"- hardware: {row['hardware']}; compute: {_hours(row.get('compute_s'))} of "
                "one core (each run's process time; a stack's shared by its seeds)"
            )
        lines.append(f"- reproduce: `{row['command']}`")
        for other in row.get("not_run_elsewhere", []):
            lines.append(f"- not run: its other experiment, `{other['command']}`")
        lines.append("")
    return "\n".join(lines)
