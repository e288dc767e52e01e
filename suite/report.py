"""Reports: per arm, each metric's mean, std and 95% bootstrap CI over seeds.

Diverged runs are counted per arm and never dropped; their metrics are missing, so each
metric's n says how many runs it rests on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from suite.stats import bootstrap_ci, summarize


def _arm_metrics(results) -> dict[str, dict[str, float]]:
    names = sorted({name for r in results for name in r.metrics})
    metrics = {}
    for name in names:
        values = np.array([r.metrics[name] for r in results if name in r.metrics], dtype=float)
        values = values[np.isfinite(values)]
        summary = summarize(values)
        low, high = bootstrap_ci(values) if len(values) else (float("nan"), float("nan"))
        metrics[name] = {
            "mean": summary.mean,
            "std": summary.std,
            "ci_low": low,
            "ci_high": high,
            "n": int(len(values)),
        }
    return metrics


def summary_data(experiment, store) -> dict[str, Any]:
    results = [
        r
        for r in store.results(experiment.name, experiment.budget)
        if r.arm in experiment.arms and r.seed in experiment.seeds
    ]
    arms = []
    for arm in experiment.arms:
        mine = [r for r in results if r.arm == arm]
        finished = [r for r in mine if r.status in ("done", "diverged")]
        arms.append(
            {
                "name": arm,
                "n_runs": len(finished),
                "n_diverged": sum(r.status == "diverged" for r in mine),
                "n_failed": sum(r.status == "failed" for r in mine),
                "metrics": _arm_metrics([r for r in finished if r.status == "done"]),
                "wall_time_s": float(np.mean([r.wall_time_s for r in finished]))
                if finished
                else None,
                "peak_rss_mb": max((r.peak_rss_mb for r in finished), default=None),
            }
        )
    return {
        "experiment": experiment.name,
        "budget": experiment.budget,
        "seeds": experiment.seeds,
        "arms": arms,
    }


def print_summary(experiment, store) -> None:
    data = summary_data(experiment, store)
    metrics = experiment.metrics or sorted({m for a in data["arms"] for m in a["metrics"]})
    print(
        f"\n{data['experiment']} [{data['budget']} budget]: mean ± std over seeds "
        "(95% bootstrap CI)"
    )
    header = ["arm", "runs", "diverged", *metrics]
    rows = []
    for arm in data["arms"]:
        cells = [arm["name"], str(arm["n_runs"]), str(arm["n_diverged"])]
        for name in metrics:
            m = arm["metrics"].get(name)
            cells.append(
                "-"
                if not m
                else f"{m['mean']:.4g} ± {m['std']:.3g} [{m['ci_low']:.4g}, {m['ci_high']:.4g}]"
            )
        rows.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)))
    if data["budget"] == "smoke":
        print("smoke budget: a wiring check, not a measurement; no conclusion should be drawn.")
