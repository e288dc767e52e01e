"""Reports: claims with verdicts, per-arm metrics with CIs, learning curves, samples, provenance.

``python -m suite report EXPERIMENT --budget quick`` writes, next to the runs
(``results/EXPERIMENT/BUDGET/``)::

    report.md            the report in Markdown (images as files beside it)
    report.html          the same, self-contained: every image embedded as a data URI
    report.json          the data both are made from (what ``--json`` prints)
    report_files/*.png   learning curves: per arm, the mean over seeds with a 95% CI band

(``report-set-HASH.*`` and ``report-set-HASH_files/`` for a run whose arms, seeds or settings
differ from the file's, by ``--set`` or ``--seeds``: ``report_stem``.)

and prints the per-arm table and one line per claim. ``report --all`` does this for every
experiment and budget with results, and writes ``results/index.md`` / ``index.html`` listing
every experiment with its claims.

A report reads only ``result.json`` files, and only those of the current config: a run whose
task or optimizer settings differ from the experiment as loaded now (another ``--set``, an
edited file) is not mixed in. Every seed run with this config counts, including seeds added by
``run --until-decided``.

Diverged runs are never dropped. Per-arm metrics are computed over the runs that finished
(``done``), and each arm's count of diverged runs stands beside them. Claims count diverged runs
as failures under the judge's diverged policy (``suite/judge/rules.py``); what counts as
diverged, failed, degenerate or censored is ``suite/judge/runs.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from suite.config import select_results
from suite.judge.evaluate import ClaimOutcome, evaluate_claims
from suite.judge.metrics import metric_info, run_scales
from suite.judge.runs import CENSORABLE_SUFFIX, is_censored, run_class
from suite.judge.stats import holm, mean_t_ci, summarize
from suite.report import render, tuning
from suite.report.render import REPORT_FILES
from suite.result import Result, canonical, task_identity

CURVE_POINTS = 200  # a curve is drawn at most at this many steps
SEQUENTIAL_FILE = "sequential.json"  # written by run --until-decided: the looks of the design


# --------------------------------------------------------------------------------------------
# Which results, and what they say
# --------------------------------------------------------------------------------------------


def config_hash(experiment) -> str:
    """A hash of everything that defines the runs but the seed: trainer, task and arms, by the
    run identity's rule (suite.result.task_identity: speed-only settings left out)."""
    data = {
        "trainer": experiment.trainer,
        "task": task_identity(asdict(experiment.task)),
        "arms": {
            arm: {role: spec.to_dict() for role, spec in specs.items()}
            for arm, specs in experiment.arms.items()
        },
    }
    if experiment.arm_tasks:  # arms with their own task (absent: the hash stays as it was)
        data["arm_tasks"] = {
            arm: task_identity(asdict(task)) for arm, task in experiment.arm_tasks.items()
        }
    return hashlib.sha256(canonical(data).encode()).hexdigest()[:16]


def claim_outcomes(
    experiment, results: list[Result], design: dict[str, Any] | None = None
) -> list[ClaimOutcome]:
    """Every claim of the experiment judged at its budget, the labels of several claims at their
    Holm step-down level (suite.judge.evaluate.evaluate_claims).

    :param design: the sequential design the results were collected under (``run
        --until-decided``: ``{"look": k, "looks_planned": K}``); each look is judged at
        1 - alpha / K. None for a fixed number of seeds.
    """
    looks = {} if not design else {"look": design["look"], "looks_planned": design["looks_planned"]}
    return evaluate_claims(experiment.claims, results, experiment.budget_label, **looks)


def sequential_design(experiment, store, results: list[Result]) -> dict[str, Any] | None:
    """The design ``run --until-decided`` recorded for these results, or None.

    It applies only when the results hold exactly the seeds of its last look: seeds added or
    removed since then make it a different experiment (then the fixed-n intervals apply, and
    the report says the recorded design was not used).
    """
    path = report_dir(experiment, store) / SEQUENTIAL_FILE
    if not path.is_file():
        return None
    design = json.loads(path.read_text(encoding="utf-8"))
    seeds = sorted({r.seed for r in results})
    design["applies"] = seeds == sorted(design.get("seeds", []))
    return design


def write_sequential_design(experiment, store, design: dict[str, Any]) -> Path:
    """Record the sequential design of ``run --until-decided`` beside the runs."""
    path = report_dir(experiment, store) / SEQUENTIAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(design, indent=2), encoding="utf-8")
    return path


def claims_data(
    experiment, results: list[Result], design: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The claims' outcomes as dicts, with the Holm-adjusted p-value over the claims tested."""
    used = design if design and design.get("applies") else None
    claims = [o.to_dict() for o in claim_outcomes(experiment, results, used)]
    adjusted = holm([c["p_value"] for c in claims])
    for c, p in zip(claims, adjusted, strict=True):
        c["holm_p"] = p
    return claims


def _metric_stats(results: list[Result], name: str) -> dict[str, Any]:
    """Mean, median, IQM, std and the 95% Student-t CI of the mean of one metric over the runs
    that finished (t, not a percentile bootstrap: at 3 seeds the bootstrap interval is
    [min, max] and covers the mean about half the time; suite/judge/stats.py)."""
    values = np.array([r.metrics[name] for r in results if name in r.metrics], dtype=float)
    n_nonfinite = int(np.count_nonzero(~np.isfinite(values)))
    values = values[np.isfinite(values)]
    summary = summarize(values)
    interval = mean_t_ci(values)
    # The t interval is symmetric and can pass the metric's known range (an IS below 1, a FID
    # below 0 at 3 seeds): cut it there, as no mean of recorded values can lie outside it.
    info = metric_info(name, results)
    low = interval.ci_low if info.low is None else max(interval.ci_low, info.low)
    high = interval.ci_high if info.high is None else min(interval.ci_high, info.high)
    out = {
        "mean": summary.mean,
        "median": summary.median,
        "iqm": summary.iqm,
        "std": summary.std,
        "ci_low": low,
        "ci_high": high,
        "n": int(values.size),
        "n_nonfinite": n_nonfinite,
    }
    scales = run_scales(results, name)
    if len(scales) > 1:  # a mean over two scales is no figure: the cell says so
        out["mixed_scales"] = scales
    if name.endswith(CENSORABLE_SUFFIX):
        out["n_censored"] = sum(is_censored(r, name) for r in results)
        # A run that never reached the threshold enters at its step budget, so this is a
        # restricted mean (RMST), which lies in [0, budget]: a t interval past either end
        # claims values no run could record, so it is cut there (the claims use RMST too).
        budgets = [r.task.get("total_timesteps") for r in results if r.task]
        if budgets and all(isinstance(b, (int, float)) for b in budgets):
            out["ci_low"], out["ci_high"] = max(low, 0.0), min(high, float(max(budgets)))
    return out


def _arm_summary(arm: str, specs: dict, results: list[Result]) -> dict[str, Any]:
    mine = sorted((r for r in results if r.arm == arm), key=lambda r: r.seed)
    finished = [r for r in mine if r.status in ("done", "diverged")]
    done = [r for r in mine if r.status == "done"]
    names = sorted({name for r in done for name in r.metrics})
    gpu = [r.peak_gpu_mb for r in finished if r.peak_gpu_mb is not None]
    return {
        "name": arm,
        "optimizers": {role: spec.to_dict() for role, spec in specs.items()},
        "seeds": [r.seed for r in mine],
        "n_runs": len(finished),
        "n_done": len(done),
        "n_diverged": sum(r.status == "diverged" for r in mine),
        "diverged_at_steps": [r.diverged_at_step for r in mine if r.status == "diverged"],
        "n_failed": sum(r.status == "failed" for r in mine),
        "metrics": {name: _metric_stats(done, name) for name in names},
        "wall_time_s": float(np.mean([r.wall_time_s for r in finished])) if finished else None,
        "core_seconds_total": float(sum(r.core_seconds for r in finished)),
        "peak_rss_mb": max((r.peak_rss_mb for r in finished), default=None),
        "peak_gpu_mb": max(gpu) if gpu else None,
    }


def reproduction_card(experiment, results: list[Result]) -> dict[str, Any]:
    """What it takes to reproduce the report: commit, packages, hardware, config, seeds, and the
    metric settings the trainers recorded in ``Result.details``."""
    envs = [r.environment for r in results if r.environment]
    commits = sorted(
        {
            f"{(e.get('git') or {}).get('commit') or 'unknown'}"
            + (" (uncommitted changes)" if (e.get("git") or {}).get("dirty") else "")
            for e in envs
        }
    )
    packages: dict[str, list[str]] = {}
    for e in envs:
        for name, version in (e.get("packages") or {}).items():
            packages.setdefault(name, [])
            if version not in packages[name]:
                packages[name].append(version)
    hardware = []
    for e in envs:
        if e.get("hardware") and e["hardware"] not in hardware:
            hardware.append(e["hardware"])
    settings: dict[str, list[Any]] = {}
    for r in results:
        for key, value in r.details.items():
            settings.setdefault(key, [])
            if value not in settings[key]:
                settings[key].append(value)
    seeds = sorted({r.seed for r in results})
    changes = command_changes(experiment)
    seed_arg = (
        f" --seeds {len(seeds)}"
        if seeds and seeds == list(range(len(seeds))) and not any("--seeds" in c for c in changes)
        else ""
    )  # a seed list that is not 0..N-1 comes from the file
    return {
        "command": reproduce_command(experiment) + seed_arg,
        "git_commit": commits,
        "packages": {k: v[0] if len(v) == 1 else v for k, v in packages.items()},
        "hardware": hardware,
        "devices": sorted({r.device for r in results}),
        "config_hash": config_hash(experiment),
        "seeds": {arm: sorted(r.seed for r in results if r.arm == arm) for arm in experiment.arms},
        "run_ids": sorted(r.run_id for r in results),
        "metric_settings": {k: v[0] if len(v) == 1 else v for k, v in settings.items()},
        "arms": {
            arm: {role: spec.to_dict() for role, spec in specs.items()}
            for arm, specs in experiment.arms.items()
        },
    }


def reproduce_command(experiment) -> str:
    """The command that runs this configuration: the file, the budget and every change the
    command line made (``--set`` and ``--seeds``), each quoted for a POSIX shell."""
    target = experiment.name if experiment.path.parent.name == "configs" else str(experiment.path)
    words = ["python", "-m", "suite", "run", target, "--budget", experiment.budget]
    for change in command_changes(experiment):
        option, _, value = change.partition(" ")
        words += [option, value]
    return shlex.join(words)


# --------------------------------------------------------------------------------------------
# Learning curves and sample grids
# --------------------------------------------------------------------------------------------


def curve_band(
    curves: list[list[list[float]]],
    points: int = CURVE_POINTS,
    seed: int = 0,
    diverged: list[bool] | None = None,
) -> dict[str, np.ndarray]:
    """Mean over seeds and a 95% Student-t CI band of the mean, on a common step grid (no band
    where a single seed has a value: one seed gives no interval).

    :param curves: one curve per seed, each a list of [step, value]; seeds may log at different
        steps and end early (a diverged run): each is interpolated within its own range only.
    :param points: at most this many grid steps (the union of logged steps, thinned evenly).
    :param seed: unused (the band was a bootstrap once); kept for callers.
    :param diverged: per curve, whether its run diverged (issue 12). After the first step at
        which a diverged run has stopped logging, the mean and band are NaN (not drawn): a mean
        over only the surviving seeds would show the arm better than it is. ``n`` still counts
        the seeds with a value there.
    :returns: ``steps``, ``mean``, ``low``, ``high``, ``n`` (seeds with a value at each step),
        arrays of shape (n_steps,).
    """
    arrays = [np.asarray(c, dtype=float).reshape(-1, 2) for c in curves if len(c)]
    empty = np.zeros(0)
    if not arrays:
        return {"steps": empty, "mean": empty, "low": empty, "high": empty, "n": empty}
    steps = np.unique(np.concatenate([a[:, 0] for a in arrays]))
    if steps.size > points:
        steps = steps[np.linspace(0, steps.size - 1, points).round().astype(int)]
    grid = np.full((len(arrays), steps.size), np.nan)
    for i, a in enumerate(arrays):
        a = a[np.argsort(a[:, 0], kind="stable")]
        inside = (steps >= a[0, 0]) & (steps <= a[-1, 0])
        grid[i, inside] = np.interp(steps[inside], a[:, 0], a[:, 1])
    mean, low, high, n = (np.full(steps.size, np.nan) for _ in range(4))
    for j in range(steps.size):
        column = grid[:, j][np.isfinite(grid[:, j])]
        n[j] = column.size
        if column.size:
            mean[j] = column.mean()
            interval = mean_t_ci(column)
            low[j], high[j] = interval.ci_low, interval.ci_high
    flags = [d for c, d in zip(curves, diverged or [False] * len(curves), strict=True) if len(c)]
    ends = [a[:, 0].max() for a, d in zip(arrays, flags, strict=True) if d]
    if ends:
        after = steps > min(ends)
        mean[after], low[after], high[after] = np.nan, np.nan, np.nan
    return {"steps": steps, "mean": mean, "low": low, "high": high, "n": n}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "curve"


def curve_order(names: set[str], metrics: list[str]) -> list[str]:
    """Curves in the order of the metrics they measure (a curve ``eval/return`` goes with the
    metric ``eval/return_final``), then the rest by name.

    :param metrics: the claims' metrics first, then the experiment's ``metrics``.
    """

    def rank(name: str) -> tuple[int, bool, str]:
        for i, metric in enumerate(metrics):
            if metric == name or metric.startswith(name + "_") or metric.startswith(name + "/"):
                return (i, False, name)
        # Lengths after the rest: where one repeats a return (CartPole), the return is kept.
        return (len(metrics), "length" in name, name)

    return sorted(names, key=rank)


def _same_curves(results: list[Result], a: str, b: str) -> bool:
    """Whether curve ``b`` repeats curve ``a`` in every run (CartPole's episode length is its
    return: +1 per step)."""
    both = [r for r in results if r.curves.get(a) or r.curves.get(b)]
    return bool(both) and all(r.curves.get(a) == r.curves.get(b) for r in both)


def plot_curves(
    results: list[Result], arms: list[str], out_dir: Path, metrics: list[str] = ()
) -> dict[str, str]:
    """One PNG per curve name, in the order of ``metrics`` (see curve_order): each arm's mean
    over seeds with its 95% CI band. A curve identical to an earlier one in every run is not
    drawn twice.

    :returns: {curve name: PNG path relative to ``out_dir.parent``}.
    """
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    names: list[str] = []
    for name in curve_order({name for r in results for name in r.curves}, list(metrics)):
        if not any(_same_curves(results, kept, name) for kept in names):
            names.append(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in names:
        figure = Figure(figsize=(7, 3.8), dpi=100, layout="constrained")
        axes = figure.subplots()
        for i, arm in enumerate(arms):
            mine = [r for r in results if r.arm == arm and r.curves.get(name)]
            if not mine:
                continue
            band = curve_band(
                [r.curves[name] for r in mine], diverged=[r.status == "diverged" for r in mine]
            )
            diverged = sum(r.status == "diverged" for r in mine)
            color = f"C{i % 10}"
            label = f"{arm} (n={len(mine)}, {diverged} diverged)"
            axes.plot(band["steps"], band["mean"], color=color, label=label)
            axes.fill_between(band["steps"], band["low"], band["high"], color=color, alpha=0.2)
        axes.set_xlabel("step")
        axes.set_ylabel(name)
        axes.set_title(name, fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        path = out_dir / f"curve_{_slug(name)}.png"
        figure.savefig(path)
        files[name] = str(path.relative_to(out_dir.parent))
    return files


def sample_grids(results: list[Result], arms: list[str], report_dir: Path) -> list[dict]:
    """Per arm, the PNG artifacts (sample grids) of its lowest-seed finished run.

    :returns: [{arm, seed, name, path}], path relative to ``report_dir`` (the budget directory,
        which holds ``ARM/seedN-RUNID/``).
    """
    found = []
    for arm in arms:
        mine = sorted(
            (r for r in results if r.arm == arm and r.status == "done" and r.artifacts),
            key=lambda r: r.seed,
        )
        if not mine:
            continue
        r = mine[0]
        for name, relative in sorted(r.artifacts.items()):
            path = report_dir / arm / f"seed{r.seed}-{r.run_id}" / relative
            if path.suffix.lower() == ".png" and path.is_file():
                found.append(
                    {
                        "arm": arm,
                        "seed": r.seed,
                        "name": name,
                        "path": str(path.relative_to(report_dir)),
                    }
                )
    return found


# --------------------------------------------------------------------------------------------
# The report's data
# --------------------------------------------------------------------------------------------


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, numpy scalars -> Python, so the JSON is strict."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def report_dir(experiment, store) -> Path:
    return Path(store.root) / experiment.name / experiment.budget


def summary_data(
    experiment, store, results: list[Result] | None = None, reference: str | None = None
) -> dict[str, Any]:
    """Everything a report shows, as plain data (strict JSON: NaN as null).

    :param reference: the arm every other arm is compared against (default: the best arm).
    """
    if results is None:
        results = select_results(experiment, store)
    design = sequential_design(experiment, store, results) if store is not None else None
    arms = [_arm_summary(arm, specs, results) for arm, specs in experiment.arms.items()]
    return _json_safe(
        {
            "experiment": experiment.name,
            "budget": experiment.budget,
            "task_overrides": experiment.task_overrides,
            "changes": command_changes(experiment),
            "description": experiment.description,
            "seeds": sorted({r.seed for r in results}) or experiment.seeds,
            "metrics": experiment.metrics,
            "return_threshold": getattr(experiment.task, "return_threshold", None),
            "arms": arms,
            "claims": claims_data(experiment, results, design),
            # Who won and by how much, as the terminal says it: in the files too (issue 26).
            "comparison": comparison(experiment, results, reference),
            "sequential": design,
            "diverged_note": render.DIVERGED_NOTE,
            "reproduction": reproduction_card(experiment, results),
        }
    )


def command_changes(experiment) -> list[str]:
    """How the command line changed the file's documented configuration, as the options that
    did it (``--set task.total_timesteps=1200``, ``--set arms.sgd.q.lr=1000``, ``--seeds 2``)."""
    task = [f"--set {o}" for o in experiment.task_overrides]
    return list(dict.fromkeys([*task, *experiment.variant]))


def report_stem(experiment) -> str:
    """``report`` for the file's documented configuration; ``report-set-HASH`` for any other
    (arms, seeds or settings changed by ``--set`` or ``--seeds``), so exploring never overwrites
    the documented report (HASH: the first 8 hex digits of the sha256 of the sorted changes)."""
    changes = command_changes(experiment)
    if not changes:
        return "report"
    text = "\n".join(sorted(changes))
    return f"report-set-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def write_report(
    experiment, store, reference: str | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write report.md, report.html, report.json and the PNGs (``report_stem``: other names at
    settings changed by --set); return the data and the paths.

    :param reference: the arm the comparison is against (default: the best arm).
    """
    results = select_results(experiment, store)
    data = summary_data(experiment, store, results, reference)
    directory = report_dir(experiment, store)
    directory.mkdir(parents=True, exist_ok=True)
    arms = list(experiment.arms)
    order = [c.metric for c in experiment.claims] + list(experiment.metrics)
    stem = report_stem(experiment)
    files = REPORT_FILES if stem == "report" else f"{stem}_files"
    data["curves"] = plot_curves(results, arms, directory / files, order)
    data["samples"] = sample_grids(results, arms, directory)
    data["tuning"] = tuning.tuning_section(experiment, store, directory, files)  # `tuning`
    paths = {kind: directory / f"{stem}.{kind}" for kind in ("md", "html", "json")}
    data["files"] = {k: str(v) for k, v in paths.items()}
    paths["md"].write_text(render.render_markdown(data), encoding="utf-8")
    paths["html"].write_text(render.render_html(data, directory), encoding="utf-8")
    paths["json"].write_text(json.dumps(data, indent=2, allow_nan=False), encoding="utf-8")
    return data, paths


# --------------------------------------------------------------------------------------------
# Text: terminal, Markdown, HTML
# --------------------------------------------------------------------------------------------


def print_summary(
    experiment,
    store,
    data: dict[str, Any] | None = None,
    reference: str | None = None,
    paths: dict[str, Path] | None = None,
    notes: dict[str, str] | None = None,
) -> None:
    """What a run found: the per-arm table (mean [95% CI] n over seeds), what each metric
    means, each arm against the best (or ``reference``), one line per claim, the report's files.

    :param notes: arm -> what ``--set`` changed in it, shown beside the arm's name.
    """

    data = data or summary_data(experiment, store, reference=reference)
    lines = render.summary_lines(data, data["comparison"], notes, paths, render.terminal_width())
    print("\n".join(lines))


# --------------------------------------------------------------------------------------------
# The run's closing comparison: who won, by how much, and whether n seeds can tell
# --------------------------------------------------------------------------------------------


def metric_direction(metric: str, claims: list[Any]) -> str:
    """ "higher" or "lower" is better: a claim's direction on this metric, else by its name."""
    for claim in claims:
        if claim.metric == metric:
            return claim.direction
    leaf = metric.rsplit("/", 1)[-1].lower()
    return "lower" if any(word in leaf for word in render.LOWER_IS_BETTER) else "higher"


def comparison_metrics(experiment) -> list[str]:
    """The claims' metrics first, then the experiment's first metric (each once)."""
    names = [c.metric for c in experiment.claims] + experiment.metrics[:1]
    return list(dict.fromkeys(names))


def _finite_by_seed(results: list[Result], arm: str, metric: str) -> dict[int, float]:
    return {
        r.seed: float(r.metrics[metric])
        for r in results
        if r.arm == arm and run_class(r, metric) == "finished"
    }


def compare_arms(
    a: dict[int, float], b: dict[int, float], direction: str, confidence: float = 0.95
) -> dict[str, Any]:
    """Arm A against arm B: mean(A) - mean(B) with a t interval (paired over the seeds both
    have when they share them all, Welch's otherwise) and P(A better than B).

    A t interval, not a bootstrap: with 3 seeds a percentile bootstrap CI is far too narrow
    (it cannot be wider than the sample's range; Efron & Tibshirani 1993, Sec. 13.3).

    :param a, b: seed -> finite value of each arm.
    :returns: difference, ci_low, ci_high (NaN below 2 seeds), n, paired, p_better, and
        ``distinguishable`` (the CI excludes 0).
    """
    from suite.judge import stats

    paired = bool(a) and set(a) == set(b)
    seeds = sorted(a)
    xa = np.array([a[s] for s in seeds]) if paired else np.array(list(a.values()))
    xb = np.array([b[s] for s in seeds]) if paired else np.array(list(b.values()))
    if not (xa.size and xb.size):
        nan = float("nan")
        return {
            "difference": nan,
            "ci_low": nan,
            "ci_high": nan,
            "n": 0,
            "paired": paired,
            "p_better": nan,
            "distinguishable": False,
        }
    effect = (stats.paired_t_ci if paired else stats.welch_t_ci)(xa, xb, confidence)
    sign = 1.0 if direction == "higher" else -1.0
    p_better = stats.probability_of_improvement(sign * xa, sign * xb)
    low, high = effect.ci_low, effect.ci_high
    separated = math.isfinite(low) and math.isfinite(high) and (low > 0 or high < 0)
    return {
        "difference": effect.estimate,
        "ci_low": low,
        "ci_high": high,
        "n": effect.n,
        "paired": paired,
        "p_better": p_better,
        "distinguishable": bool(separated),
    }


def _compared_row(arm: str, base: str, values: dict, scales: dict, direction: str) -> dict:
    """``arm`` against ``base``, or no figure where their runs declare different scales (the
    judge's guard mixed_scales: e.g. IS from two feature networks)."""
    row = {"arm": arm, **compare_arms(values[arm], values[base], direction)}
    if len(scales[arm]) == 1 and scales[arm] == scales[base]:
        return row
    nan = float("nan")
    row.update(difference=nan, ci_low=nan, ci_high=nan, p_better=nan, distinguishable=False)
    row["not_comparable"] = {arm: scales[arm], base: scales[base]}
    return row


def comparison(experiment, results: list[Result], reference: str | None = None) -> list[dict]:
    """Per comparison metric: the best arm (or ``reference``) and every other arm against it.

    :returns: [{metric, direction, reference, best, means: {arm: mean}, rows: [{arm, ...}],
        winner}].
    """
    out = []
    for metric in comparison_metrics(experiment):
        direction = metric_direction(metric, experiment.claims)
        values = {arm: _finite_by_seed(results, arm, metric) for arm in experiment.arms}
        means = {arm: float(np.mean(list(v.values()))) for arm, v in values.items() if v}
        if not means:
            continue
        pick = max if direction == "higher" else min
        best = pick(means, key=means.get)
        base = reference if reference in values else best
        scales = {
            arm: run_scales([r for r in results if r.arm == arm and r.seed in v], metric)
            for arm, v in values.items()
        }
        rows = [
            _compared_row(arm, base, values, scales, direction)
            for arm in experiment.arms
            if arm != base and values[arm]
        ]
        entry = {
            "metric": metric,
            "direction": direction,
            "reference": base,
            "best": best,
            "means": means,
            "rows": rows,
        }
        # The winner line, as the terminal prints it (none against a chosen reference arm).
        entry["winner"] = render.winner_line(entry) if rows and base == best else None
        out.append(entry)
    return out


# --------------------------------------------------------------------------------------------
# report --all: every experiment's report, and an index of all claims
# --------------------------------------------------------------------------------------------


def write_all(store) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Report every experiment in configs/ at every budget with results, then the index.

    Experiments from other files (run by path) are listed from the report.json their last
    ``suite report PATH`` wrote. An experiment that no longer loads is listed with its error.

    :returns: the index entries and the paths of index.md / index.html.
    """
    from suite.config import BUDGETS, CONFIG_DIR, experiment_names, load_experiment
    from suite.schema import read_yaml

    root = Path(store.root)
    entries, covered = [], set()
    for name in experiment_names():
        budgets = [b for b in BUDGETS if store.rows(name, b)]
        for budget in budgets or [None]:
            entry: dict[str, Any] = {"experiment": name, "budget": budget}
            try:
                raw_budgets = read_yaml(CONFIG_DIR / f"{name}.yaml").get("budgets") or {}
                experiment = load_experiment(name, budget or next(iter(raw_budgets), "quick"))
            except Exception as error:  # noqa: BLE001 - one broken experiment must not hide the rest
                entries.append({**entry, "error": str(error), "claims": []})
                continue
            if budget is None:  # no results yet: list its claims as not run
                outcomes = claim_outcomes(experiment, [])
                claims = [o.to_dict() for o in outcomes]
                entries.append({**entry, "claims": claims})
                continue
            data, paths = write_report(experiment, store)
            covered.add((name, budget))
            entries.append({**entry, "claims": data["claims"], "report": str(paths["html"])})
    for path in sorted(root.glob("*/*/report.json")):
        name, budget = path.parent.parent.name, path.parent.name
        if (name, budget) in covered or name in {e["experiment"] for e in entries}:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        entries.append(
            {
                "experiment": name,
                "budget": budget,
                "claims": data.get("claims", []),
                "report": str(path.with_name("report.html")),
            }
        )
    paths = {"md": root / "index.md", "html": root / "index.html"}
    paths["md"].write_text(render.index_markdown(entries, root), encoding="utf-8")
    paths["html"].write_text(render.index_html(entries, root), encoding="utf-8")
    return entries, paths
